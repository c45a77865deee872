package audittrail

// RegexProgramSizeForTest is regexProgramSize, for the tests of package
// audittrail_test.
var RegexProgramSizeForTest = regexProgramSize
