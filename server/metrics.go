package server

import (
	"context"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/merkle"
)

// Metrics are the Prometheus metrics of a server, served on the internal
// listener at /metrics:
//
//	audittrail_requests_total{listener,protocol,method,code}
//	audittrail_request_duration_seconds{listener,protocol,method,code}
//	audittrail_store_append_duration_seconds    (the store's Append: validation done, until durable)
//	audittrail_store_appended_events_total      (events acknowledged by Append, retries included)
//	audittrail_store_search_duration_seconds    (the store's Search)
//	audittrail_events_stored                    (when the store reports it)
//	audittrail_log_signed_tree_size             (with a verifiable log: leaves of the latest signed checkpoint)
//	audittrail_log_horizon_timestamp_seconds    (its received-before horizon, Unix seconds)
//	audittrail_log_failures_total               (rounds of the log's integrator that failed, when it reports them)
//	audittrail_log_public_keys                  (keys the log's checkpoints verify with: 2 during a rotation of its signing key)
//	audittrail_log_checkpoints_thinned_total    (old checkpoints deleted by thinning, docs/configuration.md)
//	audittrail_log_checkpoints_withheld_total   (checkpoints the witnesses' quorum did not cosign, not stored: --witness-quorum-required)
//	audittrail_response_write_timeouts_total{listener,transport} (answers not taken within --response-write-timeout: cut)
//	audittrail_connections_refused_total{listener} (connections closed at accept: --max-connections-per-ip)
//	audittrail_search_prefetch_pages_total{outcome} (pages read ahead: started, full, taken, waited, failed, mismatched, expired)
//	audittrail_retention_deleted_events_total   (with serve --retention: events deleted)
//	audittrail_retention_erased_values_total    (values only deleted events held, erased: embedded store)
//	audittrail_retention_failures_total         (its passes that failed)
//	audittrail_retention_cutoff_timestamp_seconds (its cutoff: no older event is kept or accepted)
//
// plus the Go runtime and process collectors. protocol is "grpc" or "http";
// method is the RPC name for gRPC ("SearchEvents") and the matched route for
// HTTP ("POST /v1/events:search", "GET /version", "unmatched"; "OTHER
// /oauth2/token" for a method that is not a standard one: metricMethod);
// code is the gRPC code name for gRPC ("OK", "InvalidArgument") and the
// HTTP status for HTTP ("200", "400").
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	append   prometheus.Histogram
	appended prometheus.Counter
	search   prometheus.Histogram
	cut      *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

// NewMetrics returns the metrics in a new registry. eventsStored, when not
// nil, reports the number of events in the store for the
// audittrail_events_stored gauge.
func NewMetrics(eventsStored func() uint64) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audittrail_requests_total",
			Help: "Requests served, by listener, protocol (grpc, http), method (RPC or route) and code (gRPC code or HTTP status).",
		}, []string{"listener", "protocol", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "audittrail_request_duration_seconds",
			Help:    "Time to serve a request, by listener, protocol, method and code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12), // 0.5 ms to ~30 s
		}, []string{"listener", "protocol", "method", "code"}),
		append: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "audittrail_store_append_duration_seconds",
			Help:    "Time of the store's Append calls, until the events are on stable storage (includes the fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 0.1 ms to ~6 s
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audittrail_store_appended_events_total",
			Help: "Events acknowledged by the store's Append (idempotent retries included).",
		}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audittrail_response_write_timeouts_total",
			Help: "Answers whose client did not take them within --response-write-timeout, by listener and transport: http (net/http: the HTTP/1.1 connection closed, the HTTP/2 stream reset) or grpc (gRPC's transport: the connection closed).",
		}, []string{"listener", "transport"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audittrail_connections_refused_total",
			Help: "Connections closed as they were accepted because their client address had --max-connections-per-ip open already, by listener.",
		}, []string{"listener"}),
		search: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "audittrail_store_search_duration_seconds",
			Help:    "Time of the store's Search calls (one page each).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.append, m.appended, m.search, m.cut, m.refused,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if eventsStored != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "audittrail_events_stored",
			Help: "Events in the store.",
		}, func() float64 { return float64(eventsStored()) }))
	}
	return m
}

// watchLog registers the gauges of the verifiable log, read from its latest
// signed checkpoint at each scrape, and the count of its failed rounds. audittrail_events_stored minus the
// signed tree size is how far the signer is behind the store (on one
// node; PostgreSQL replicas report the leader's checkpoints), and the
// horizon says how recent the signed events are.
func (m *Metrics) watchLog(log VerifiableLog) {
	checkpoint := func() *merkle.Checkpoint { _, cp := log.Checkpoint(); return cp }
	for _, g := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "audittrail_log_signed_tree_size",
			Help: "Leaves (events) of the verifiable log's latest signed checkpoint; 0 before the first.",
		}, func() float64 {
			if cp := checkpoint(); cp != nil {
				return float64(cp.Size)
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "audittrail_log_horizon_timestamp_seconds",
			Help: "Received-before horizon of the latest signed checkpoint (Unix seconds): every event received before it is signed; 0 before the first checkpoint.",
		}, func() float64 {
			if cp := checkpoint(); cp != nil {
				return float64(cp.ReceivedBefore.UnixNano()) / 1e9
			}
			return 0
		}),
	} {
		m.register(g)
	}
	if k, ok := log.(interface{ VerifierKey() string }); ok {
		m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "audittrail_log_public_keys",
			Help: "Public keys the verifiable log's checkpoints are verified with: 1, or 2 while its signing key is rotated (--log-previous-key); a rotation left unfinished shows here.",
		}, func() float64 { return float64(strings.Count(strings.TrimSuffix(k.VerifierKey(), "\n"), "\n") + 1) }))
	}
	if th, ok := log.(interface{ Thinned() uint64 }); ok {
		m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "audittrail_log_checkpoints_thinned_total",
			Help: "Signed checkpoints deleted by thinning (older than --log-keep-checkpoints, not the last of their hour).",
		}, func() float64 { return float64(th.Thinned()) }))
	}
	if f, ok := log.(interface{ Failures() uint64 }); ok {
		m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "audittrail_log_failures_total",
			Help: "Rounds of the verifiable log's integrator (integrate, sign; on a PostgreSQL replica also refresh) that failed; each is logged. A growing count with a stalled signed tree size needs an operator.",
		}, func() float64 { return float64(f.Failures()) }))
	}
	if w, ok := log.(interface{ Withheld() uint64 }); ok {
		m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "audittrail_log_checkpoints_withheld_total",
			Help: "Signed checkpoints not stored because the witnesses' quorum did not cosign them (--witness-quorum-required); while it grows, the signed tree size stands still.",
		}, func() float64 { return float64(w.Withheld()) }))
	}
}

// watchPrefetch registers the counts of the pages the service read ahead
// (audittrail.PrefetchStats), read at each scrape. taken over started is
// how much of the reading ahead was of use; waited over taken, how often a
// client came back before its page was read; full, how often reading ahead
// was refused for want of room (docs/design/performance.md, "Reading the
// next page ahead").
func (m *Metrics) watchPrefetch(svc *audittrail.Service) {
	m.register(prefetchCollector{svc: svc, desc: prometheus.NewDesc("audittrail_search_prefetch_pages_total",
		"Pages of search results read ahead, by outcome: started; full (not started: as many pages kept as allowed, in all or for the caller); taken by the request of their token; "+
			"waited (of those taken, the request came before the read ended); failed (the read ended in an error, the request searched again); "+
			"mismatched (asked with another page size or scope, or too late: dropped, searched again); expired (dropped unasked after their time to live).",
		[]string{"outcome"}, nil)})
}

type prefetchCollector struct {
	svc  *audittrail.Service
	desc *prometheus.Desc
}

func (c prefetchCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c prefetchCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.svc.PrefetchStats()
	for _, o := range []struct {
		outcome string
		n       uint64
	}{
		{"started", st.Started}, {"full", st.Full}, {"taken", st.Taken}, {"waited", st.Waited},
		{"failed", st.Failed}, {"mismatched", st.Mismatched}, {"expired", st.Expired},
	} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(o.n), o.outcome)
	}
}

// WatchDiskSpace registers the gauges of the embedded store's file system,
// read at each scrape by space (pebblestore.Store.DiskSpace): the free
// bytes (NaN when they cannot be read) and the reserve below which the
// store refuses appends.
func (m *Metrics) WatchDiskSpace(space func() (free, reserve uint64, ok bool)) {
	m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "audittrail_store_disk_free_bytes",
		Help: "Free space on the embedded store's file system; appends are refused below audittrail_store_disk_reserve_bytes.",
	}, func() float64 {
		free, _, ok := space()
		if !ok {
			return math.NaN()
		}
		return float64(free)
	}))
	m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "audittrail_store_disk_reserve_bytes",
		Help: "Free space the embedded store keeps in reserve (--min-free-disk-mib; 0: none).",
	}, func() float64 {
		_, reserve, _ := space()
		return float64(reserve)
	}))
}

// WatchRetention exports the counts of a retention (serve --retention).
func (m *Metrics) WatchRetention(stats func() audittrail.RetentionStats) {
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "audittrail_retention_deleted_events_total",
		Help: "Events deleted because they were older than the retention period (--retention).",
	}, func() float64 { return float64(stats().Deleted) }))
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "audittrail_retention_erased_values_total",
		Help: "Distinct values (principals, resources, metadata pairs, ...) that only deleted events held, erased from the embedded store's dictionaries.",
	}, func() float64 { return float64(stats().Erased) }))
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "audittrail_retention_failures_total",
		Help: "Retention passes that failed (each is logged and recorded as a self-audit event).",
	}, func() float64 { return float64(stats().Failures) }))
	m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "audittrail_retention_cutoff_timestamp_seconds",
		Help: "The retention cutoff, Unix seconds: no event with an earlier event_time is kept or accepted (NaN before the first pass).",
	}, func() float64 {
		c := stats().Cutoff
		if c.IsZero() {
			return math.NaN()
		}
		return float64(c.UnixNano()) / 1e9
	}))
}

// WatchWitness exports the counts of one witness of the log
// (--witness-policy), labelled with its name in the policy.
func (m *Metrics) WatchWitness(name string, cosigned, failures, size func() uint64) {
	labels := prometheus.Labels{"witness": name}
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "audittrail_witness_cosignatures_total", ConstLabels: labels,
		Help: "Cosignatures the witness returned for the log's checkpoints.",
	}, func() float64 { return float64(cosigned()) }))
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "audittrail_witness_failures_total", ConstLabels: labels,
		Help: "Requests to the witness that failed or were refused (each is logged; the witness is asked again after 1 s, doubling to 5 min).",
	}, func() float64 { return float64(failures()) }))
	m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "audittrail_witness_cosigned_tree_size", ConstLabels: labels,
		Help: "Size of the latest tree the witness cosigned, as far as the log knows (0 before its first answer).",
	}, func() float64 { return float64(size()) }))
}

// register registers c, keeping the first of two with one name (a Metrics
// shared by two servers).
func (m *Metrics) register(c prometheus.Collector) {
	if err := m.reg.Register(c); err != nil {
		if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
			panic(err) // a name clash with another metric: a programming error
		}
	}
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) observeRequest(listener, protocol, method, code string, d time.Duration) {
	m.requests.WithLabelValues(listener, protocol, method, code).Inc()
	m.duration.WithLabelValues(listener, protocol, method, code).Observe(d.Seconds())
}

// InstrumentStore returns st with its Append and Search timed. Give the
// result to the audittrail.Service; Close goes through to st.
func (m *Metrics) InstrumentStore(st audittrail.Store) audittrail.Store {
	return &instrumentedStore{Store: st, m: m}
}

type instrumentedStore struct {
	audittrail.Store
	m *Metrics
}

func (s *instrumentedStore) Append(ctx context.Context, events []*audittrail.Event) ([]audittrail.AppendResult, error) {
	start := time.Now()
	res, err := s.Store.Append(ctx, events)
	s.m.append.Observe(time.Since(start).Seconds())
	if err == nil {
		n := 0
		for _, r := range res {
			if r.Err == nil {
				n++
			}
		}
		s.m.appended.Add(float64(n))
	}
	return res, err
}

func (s *instrumentedStore) Search(ctx context.Context, req audittrail.SearchRequest) (*audittrail.SearchResult, error) {
	start := time.Now()
	res, err := s.Store.Search(ctx, req)
	s.m.search.Observe(time.Since(start).Seconds())
	return res, err
}
