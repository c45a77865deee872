package audittrail

import (
	"errors"
	"fmt"
)

// Error codes. Each transport maps them to its own status codes in one table
// (server/errors.go); nothing else in the code base needs to know about gRPC
// or HTTP status codes.
const (
	EInvalid          = "invalid"           // bad input: INVALID_ARGUMENT / 400
	ENotFound         = "not_found"         // NOT_FOUND / 404
	EConflict         = "conflict"          // ALREADY_EXISTS / 409
	EUnauthenticated  = "unauthenticated"   // UNAUTHENTICATED / 401
	EPermissionDenied = "permission_denied" // PERMISSION_DENIED / 403
	ETooLarge         = "too_large"         // RESOURCE_EXHAUSTED / 413 for bodies
	EExhausted        = "exhausted"         // RESOURCE_EXHAUSTED / 429 (rate limits)
	EUnavailable      = "unavailable"       // UNAVAILABLE / 503
	EUnimplemented    = "unimplemented"     // UNIMPLEMENTED / 501 (and 405 on the public create paths)
	EInternal         = "internal"          // INTERNAL / 500
)

// Error is the one error type of the domain. Message is meant for the person
// who sent the request: it names the field and says what is wrong. Internal
// details are logged, never put in Message.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EInternal for errors that are not an
// *Error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the human-readable message of err, or "internal error"
// for errors that are not an *Error (their text may hold internal details).
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
