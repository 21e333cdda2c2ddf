#!/bin/sh
# drainctl's policy-rc.d (invoke-rc.d(8), deb-systemd-invoke(1p)):
# /usr/sbin/policy-rc.d, as an alternative, when the package could install
# it (update-alternatives --display policy-rc.d).
#
# A web server's restart by the package manager should cost only what the
# new files need, and never take the server out over its pool's budget.
# The guard unit drains every restart but can neither refuse one nor make
# it cheaper; a policy-rc.d can: for the web servers' units (a
# drainctl-guard@ for them) and a restart of a running unit (or nginx's
# binary upgrade), it asks the agent (drainctl hook policy UNIT ACTION),
# which records the restart owed and answers 101: the package manager
# skips the restart, the old binary keeps serving, and once the package
# manager is done (in a pool: and a slot is free) the agent does itself,
# drained, a graceful reload if the package replaced nothing the server
# runs, nginx's binary upgrade, or a restart. Everything else (other units, other
# actions, no agent, any failure) is not drainctl's to decide: the
# policy-rc.d that was there before (another alternative) decides, else
# it is allowed (0). It never fails the package manager.
#
# Called as: policy-rc.d [--quiet] UNIT|ID "ACTION [FALLBACK]" [RUNLEVEL]
#            policy-rc.d --list ID [RUNLEVEL...]

self=/usr/lib/drainctl/policy-rc.d
drainctl=${DRAINCTL_POLICY_BIN:-/usr/bin/drainctl}
systemctl=${DRAINCTL_POLICY_SYSTEMCTL:-systemctl}

# next runs the policy-rc.d that was there before drainctl's: the other
# alternative of highest priority; none allows.
next() {
	alt=$(update-alternatives --query policy-rc.d 2>/dev/null | awk -v self="$self" '
		/^Alternative: / { a = $2 }
		/^Priority: / && a != "" && a != self && (n == "" || $2 + 0 > best) { best = $2 + 0; n = a }
		END { print n }')
	if [ -n "$alt" ] && [ -x "$alt" ]; then
		exec "$alt" "$@"
	fi
	exit 0
}

quiet=
id=
action=
for a in "$@"; do
	case "$a" in
	--quiet) quiet=1 ;;
	--list|-*) next "$@" ;;
	*)
		if [ -z "$id" ]; then
			id=$a
		elif [ -z "$action" ]; then
			action=$a
		fi
		;;
	esac
done
[ -n "$id" ] && [ -n "$action" ] || next "$@"

# Only a restart of a running unit is taken over ("restart start" with
# invoke-rc.d's fallback: the first word), and nginx's binary upgrade
# (its postinst's, after nginx-common's restart: the same one); not a
# stop (a removal's: the package must not stay running), a start, a
# reload, a parenthesized action (invoke-rc.d's "would not run anyway").
case "${action%% *}" in
restart|try-restart|force-reload|upgrade) ;;
*) next "$@" ;;
esac

unit=$id
case "$unit" in
*.service) ;;
*.*) next "$@" ;;
*) unit=$unit.service ;;
esac
case "$unit" in
*[!A-Za-z0-9:_.@-]*) next "$@" ;;
esac
name=${unit%.service}

# The web servers drainctl guards: the package's drop-ins enable the
# guard for apache2 and nginx; another unit is guarded if its guard runs.
case "$name" in
apache2|nginx) ;;
*) "$systemctl" is-active --quiet "drainctl-guard@$name.service" 2>/dev/null || next "$@" ;;
esac
# The host going down: nothing to put off, the guard drains the stop.
if [ "$("$systemctl" is-system-running 2>/dev/null)" = stopping ]; then
	next "$@"
fi
[ -x "$drainctl" ] || next "$@"

if [ -n "$quiet" ]; then
	"$drainctl" hook policy "$unit" "${action%% *}" 2>/dev/null
else
	"$drainctl" hook policy "$unit" "${action%% *}"
fi
rc=$?
if [ "$rc" -eq 101 ]; then
	exit 101
fi
# Allowed by drainctl (or its answer unknown): the restart goes on, the
# guard drains it; the policy-rc.d before drainctl's still has its say.
next "$@"
