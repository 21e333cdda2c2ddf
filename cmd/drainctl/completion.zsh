#compdef drainctl
# zsh completion for drainctl (drainctl completion zsh > "${fpath[1]}/_drainctl").
# drainctl itself lists the commands and flags that fit the words typed so
# far (--generate-bash-completion); no command runs.

_drainctl() {
	local -a opts
	local cur=${words[-1]}
	if [[ $cur == -* ]]; then
		opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
	fi
	if [[ ${opts[1]} != "" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
	_drainctl "$@"
else
	compdef _drainctl drainctl
fi
