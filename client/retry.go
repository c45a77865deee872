package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/internal/wire"
)

// retryPolicy retries calls that failed for reasons that may pass:
//
//   - UNAVAILABLE: the server is down, restarting or unreachable;
//   - RESOURCE_EXHAUSTED: the server sheds load; it may say how long to wait
//     (a google.rpc.RetryInfo detail, or a "retry-after" header in seconds),
//     and then the wait is that long. Message-size errors ("message larger
//     than max") share the code but are final: no retry can make a message
//     smaller.
//
// Every call of the service may be repeated. Searches read only. Creates are
// idempotent by event id: a create whose first attempt was stored after all
// (the reply was lost) returns the stored event on the retry instead of
// storing a second copy, because the event id is chosen by the caller, sent
// unchanged with every attempt, and the server answers a repeated id with the
// same content with the event as first stored.
type retryPolicy struct {
	attempts  int           // tries per call, at least 1
	base, max time.Duration // backoff before the first retry; upper bound of any wait
}

// do runs call until it succeeds, fails for good, runs out of attempts, or
// ctx ends. The error it returns is an *audittrail.Error.
func (p retryPolicy) do(ctx context.Context, call func(ctx context.Context, opts ...grpc.CallOption) error) error {
	for attempt := 1; ; attempt++ {
		var header, trailer metadata.MD
		err := call(ctx, grpc.Header(&header), grpc.Trailer(&trailer))
		if err == nil {
			return nil
		}
		wait, ok := p.wait(err, attempt, header, trailer)
		if !ok || attempt >= p.attempts {
			return giveUp(err, attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return giveUp(err, attempt)
		case <-t.C:
		}
	}
}

// giveUp converts the last error, saying how many attempts were made when
// there was more than one.
func giveUp(err error, attempts int) error {
	out := wire.FromStatus(err)
	var e *audittrail.Error
	if attempts > 1 && errors.As(out, &e) {
		return &audittrail.Error{Code: e.Code, Message: fmt.Sprintf("%s (gave up after %d attempts)", e.Message, attempts)}
	}
	return out
}

// wait says whether err is worth another attempt and how long to wait first.
func (p retryPolicy) wait(err error, attempt int, header, trailer metadata.MD) (time.Duration, bool) {
	s, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	switch s.Code() {
	case codes.Unavailable:
	case codes.ResourceExhausted:
		if strings.Contains(s.Message(), "larger than max") {
			return 0, false
		}
		if d, ok := serverDelay(s, header, trailer); ok {
			return min(d, p.max), true
		}
	default:
		return 0, false
	}
	return p.backoff(attempt), true
}

// backoff is the wait after the given failed attempt: base·2^(attempt-1),
// capped at max, of which a random half is jitter ("equal jitter"), so that
// clients failing together do not retry together.
func (p retryPolicy) backoff(attempt int) time.Duration {
	d := p.base
	for i := 1; i < attempt && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	half := d / 2
	return half + rand.N(half+1)
}

// serverDelay is the wait the server asked for, if it did.
func serverDelay(s *status.Status, header, trailer metadata.MD) (time.Duration, bool) {
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			if err := ri.GetRetryDelay().CheckValid(); err == nil {
				return max(ri.GetRetryDelay().AsDuration(), 0), true
			}
		}
	}
	for _, md := range []metadata.MD{trailer, header} {
		if v := md.Get("retry-after"); len(v) > 0 {
			if secs, err := strconv.ParseFloat(strings.TrimSpace(v[0]), 64); err == nil && secs >= 0 && secs < 1e6 {
				return time.Duration(secs * float64(time.Second)), true
			}
		}
	}
	return 0, false
}

func codeOf(c int32) codes.Code { return codes.Code(uint32(c)) }
