// Package layout holds the test of the limits the project keeps its code
// to: no non-test .go file over 500 lines (layout_test.go). The other
// limit, no non-test function over 80 lines, is funlen's in make lint
// (.golangci.yml).
package layout
