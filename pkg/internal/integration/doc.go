// Package integration holds the black-box tests of the drainctl binary:
// each builds cmd/drainctl, runs it (often as an agent in a network
// namespace of the test's own) and judges what it prints, the exit codes,
// the kernel's rules and the files it writes. Test tooling, not product:
// nothing outside the module can import it.
package integration
