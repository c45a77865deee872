package postgres

import "github.com/audittrail/audittrail"

// Exported for the tests of package postgres_test.

// LikePattern is likePattern: the LIKE pattern pushed down for a regex.
var LikePattern = likePattern

// ExactSet is exactSet: the set of values pushed down for a regex.
var ExactSet = exactSet

// EncodeText is encodeText: the stored form of a string.
var EncodeText = encodeText

// SearchSQL returns the statement and arguments of a search.
func SearchSQL(q *audittrail.Query, after *audittrail.Cursor, maxScan int) (string, []any, bool) {
	p, ok := buildSearch(q, after, maxScan)
	return p.sql, p.args, ok
}
