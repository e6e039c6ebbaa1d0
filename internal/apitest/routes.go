package apitest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
)

// ginParam matches a gin path parameter (":id" or "*path").
var ginParam = regexp.MustCompile(`[:*]([A-Za-z_][A-Za-z0-9_]*)`)

// FromGin converts a gin route path to the document's template syntax
// ("/users/:id/" -> "/users/{id}/").
func FromGin(path string) string {
	return ginParam.ReplaceAllString(path, "{$1}")
}

// RouteDrift compares the routes an engine registers with the document's
// operations and describes every difference: a route the document lacks, or
// an operation no route serves. Routes whose gin path is in ignore are not
// API (the metrics endpoint, HTML pages and their assets) and must not be in
// the document either.
func (d *Doc) RouteDrift(routes gin.RoutesInfo, ignore ...string) []string {
	documented := map[Operation]bool{}
	for _, op := range d.Operations() {
		documented[op] = true
	}
	ignored := map[string]bool{}
	for _, p := range ignore {
		ignored[FromGin(p)] = true
	}
	var problems []string
	served := map[Operation]bool{}
	for _, r := range routes {
		if r.Method == "HEAD" || r.Method == "OPTIONS" {
			continue
		}
		op := Operation{Method: r.Method, Path: FromGin(r.Path)}
		if ignored[op.Path] {
			if documented[op] {
				problems = append(problems, fmt.Sprintf("%s is documented but listed as not part of the API", op))
			}
			continue
		}
		served[op] = true
		if !documented[op] {
			problems = append(problems, fmt.Sprintf("%s is routed but not in the %s document", op, d.Name))
		}
	}
	for op := range documented {
		if !served[op] {
			problems = append(problems, fmt.Sprintf("%s is in the %s document but no route serves it", op, d.Name))
		}
	}
	slices.Sort(problems)
	return problems
}

// Lint describes what a document lacks that ours always carry: an
// operationId, a summary, a declared 500, the X-Request-ID header on every
// response, and an example of every JSON request body and of every JSON
// answer of a success status.
func (d *Doc) Lint() []string {
	var problems []string
	for _, op := range d.Operations() {
		o := d.T.Paths.Value(op.Path).GetOperation(op.Method)
		if o.OperationID == "" {
			problems = append(problems, op.String()+": no operationId")
		}
		if o.Summary == "" {
			problems = append(problems, op.String()+": no summary")
		}
		if o.RequestBody != nil && o.RequestBody.Value != nil {
			for ct, mt := range o.RequestBody.Value.Content {
				if strings.Contains(ct, "json") && !hasExample(mt.Example, len(mt.Examples), mt.Schema) {
					problems = append(problems, op.String()+": request body without an example")
				}
			}
		}
		if o.Responses.Status(500) == nil {
			problems = append(problems, op.String()+": no 500 answer declared")
		}
		for status, r := range o.Responses.Map() {
			if r.Value == nil {
				continue
			}
			if _, ok := r.Value.Headers["X-Request-ID"]; !ok {
				problems = append(problems, fmt.Sprintf("%s: %s answer without the X-Request-ID header", op, status))
			}
			if !strings.HasPrefix(status, "2") {
				continue
			}
			for ct, mt := range r.Value.Content {
				if strings.Contains(ct, "json") && !hasExample(mt.Example, len(mt.Examples), mt.Schema) {
					problems = append(problems, fmt.Sprintf("%s: %s answer without an example", op, status))
				}
			}
		}
	}
	return problems
}

func hasExample(example any, examples int, schema *openapi3.SchemaRef) bool {
	return example != nil || examples > 0 || (schema != nil && schema.Value != nil && schema.Value.Example != nil)
}
