package integration

// The exit codes scripts branch on, as README.md's table documents them.
// They are written out here rather than imported from the binary: these
// tests pin the contract, so renumbering a code in cmd/drainctl fails them.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitDeadline    = 3
	exitUnreachable = 4
	exitBusy        = 5
	exitConfigTest  = 6
	exitNotReady    = 7
	exitPermission  = 8
	exitRestart     = 9
	exitCommand     = 10
	// doctor's: its worst finding a warning, a failure.
	exitDoctorWarning = 15
	exitDoctorFail    = 16
	// exitForbidden: the agent refused the command to the caller's role.
	exitForbidden = 17
)
