package httpapi

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/internal/web"
)

// The benchmark floor, GET /api/bff/bench/floor/?bytes=N, is routed only
// when BFF_BENCH_FLOOR is on (never in a deployment). It does what every
// GET /api/bff/me/ does outside its handler — the engine's middleware
// (request id, tracing, access log, metrics, recovery) and the bearer-token
// check — and then writes a static JSON body of exactly N bytes. cmd/bench
// divides the throughput of a cached GET /api/bff/me/ by this one's, with N
// set to the size of the cached view, so the ratio is what serving the
// merged view from the cache costs on top of the least any authenticated
// answer of this binary costs.

// Floor body limits: the smallest is the empty padding, the largest is far
// above any merged view.
const (
	floorMinBytes = len(floorPrefix) + len(floorSuffix)
	floorMaxBytes = 64 << 10
)

const (
	floorPrefix = `{"floor":"`
	floorSuffix = `"}`
)

func handleBenchFloor() web.Handler {
	padding := bytes.Repeat([]byte("x"), floorMaxBytes-floorMinBytes)
	return func(c *gin.Context) error {
		n, err := strconv.Atoi(c.Query("bytes"))
		if err != nil || n < floorMinBytes || n > floorMaxBytes {
			return web.FieldError("bytes", "Give the body size in bytes, from "+
				strconv.Itoa(floorMinBytes)+" to "+strconv.Itoa(floorMaxBytes)+".")
		}
		// Written like the cached view (c.Data): no explicit Content-Length.
		c.Header("Content-Type", contentTypeJSON)
		c.Status(http.StatusOK)
		_, _ = c.Writer.WriteString(floorPrefix)
		_, _ = c.Writer.Write(padding[:n-floorMinBytes])
		_, _ = c.Writer.WriteString(floorSuffix)
		return nil
	}
}
