package server

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// RateLimit is a token bucket per principal: Rate requests a second on
// average, bursts of up to Burst. The zero RateLimit imposes no limit.
type RateLimit struct {
	Rate  float64
	Burst int
}

// limiter holds the buckets. Callers that fail to authenticate share one
// bucket per source address, so guessing tokens is slowed down too.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	// pruneAt is the number of buckets at which a new one first drops
	// those that are full again (prune): maxBuckets (tests: less), or twice
	// what the last prune kept, so that pruning costs O(1) per new bucket
	// however many buckets are in use. It was maxBuckets always, and once
	// that many buckets were in use (an address refused by its failed
	// authentications stays in use for up to burst/rate seconds), every new
	// one scanned them all with the mutex held, which every request takes.
	pruneAt, maxBuckets int
	prunes              int // prune passes (tests)
}

// maxBuckets is the number of buckets kept before the limiter drops those
// that are full again (their owners went quiet): up to this many idle
// principals and addresses stay known, about 115 bytes each. Buckets still
// in use are kept whatever their number: at most twice the principals and
// addresses that used one within the last burst/rate seconds, as pruneAt
// grows with them.
const maxBuckets = 100_000

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(l RateLimit) *limiter {
	if l.Rate <= 0 {
		return nil
	}
	burst := float64(l.Burst)
	if burst < 1 {
		burst = math.Max(1, l.Rate)
	}
	return &limiter{rate: l.Rate, burst: burst, now: time.Now, buckets: map[string]*bucket{}, pruneAt: maxBuckets, maxBuckets: maxBuckets}
}

// allow takes one token from key's bucket, or says how long until one is
// available.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.pruneAt {
			l.prune(now)
			l.pruneAt = max(l.maxBuckets, 2*len(l.buckets))
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens, b.last = l.refilled(b, now), now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.waitFor(b.tokens)
}

// refilled is what b holds at now: what it held, and the tokens that came
// since, up to the burst.
func (l *limiter) refilled(b *bucket, now time.Time) float64 {
	return math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
}

// waitFor is how long a bucket holding tokens (fewer than one) waits for one.
func (l *limiter) waitFor(tokens float64) time.Duration {
	return time.Duration((1 - tokens) / l.rate * float64(time.Second))
}

// over reports whether key's bucket is empty, without taking from it, and
// how long until a token is available.
func (l *limiter) over(key string) (bool, time.Duration) {
	if l == nil {
		return false, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return false, 0
	}
	if tokens := l.refilled(b, now); tokens < 1 {
		return true, l.waitFor(tokens)
	}
	return false, 0
}

// failedAuthKey is the bucket of the failed authentications of the address
// of ctx's request.
func failedAuthKey(ctx context.Context) string {
	return "unauthenticated:" + hostOf(metaFrom(ctx).remote)
}

// limitFailedAuth wraps a route that authenticates a credential itself
// (the built-in issuer's token endpoint): an address over its limit of
// failed authentications is refused before the credential is checked, and
// an answer 400 or 401 counts as a failed authentication, as in
// authInterceptor.
func limitFailedAuth(lim *limiter, h http.Handler) http.Handler {
	if lim == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := failedAuthKey(r.Context())
		if over, wait := lim.over(key); over {
			secs := int64(math.Max(1, math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			writeStatus(w, http.StatusTooManyRequests, status.Errorf(codes.ResourceExhausted,
				"rate limit exceeded for callers from this address, after too many failed authentications: retry after %ds", secs))
			return
		}
		sw := &recorder{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if code := sw.statusCode(); code == http.StatusBadRequest || code == http.StatusUnauthorized {
			lim.allow(key)
		}
	})
}

// prune drops the buckets that are full again (their owners went quiet).
func (l *limiter) prune(now time.Time) {
	l.prunes++
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// exhausted is the RESOURCE_EXHAUSTED error of a limited call: it carries a
// RetryInfo detail, and the retry-after header metadata (REST: the
// Retry-After header, see httpError).
func exhausted(ctx context.Context, who string, wait time.Duration) error {
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.FormatInt(secs, 10)))
	st := status.New(codes.ResourceExhausted, "rate limit exceeded for "+who+": retry after "+strconv.FormatInt(secs, 10)+"s")
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}); err == nil {
		st = d
	}
	return st.Err()
}

// retryAfter returns the Retry-After seconds of an error's RetryInfo.
func retryAfter(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return "", false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return strconv.FormatInt(int64(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds())), 10), true
		}
	}
	return "", false
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
