package forward

// Golden is exported to the external kernel tests, which share the
// -update flag and the testdata/forward folder with the unit tests.
var Golden = golden
