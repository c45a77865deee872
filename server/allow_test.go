package server

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestAllowedMethods: apiMethods names every path of the OpenAPI document
// generated from the protobuf's HTTP rules with its method, so that a 405
// names the right one.
func TestAllowedMethods(t *testing.T) {
	b, err := os.ReadFile("../docs/api/audittrail.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) == 0 {
		t.Fatal("no paths in the OpenAPI document")
	}
	for path, ops := range doc.Paths {
		if len(ops) != 1 {
			t.Errorf("%s has %d methods: apiMethods holds one per path", path, len(ops))
		}
		for method := range ops {
			if got := apiMethods[path]; got != strings.ToUpper(method) {
				t.Errorf("apiMethods[%q] = %q, the API has %s", path, got, strings.ToUpper(method))
			}
		}
	}
}
