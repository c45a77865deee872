package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

type httptestServer = httptest.Server

func newHTTPTestServer(t *testing.T, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}
