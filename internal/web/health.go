package web

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Check probes one dependency; a nil error means reachable.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Health registers GET /healthz (the process is alive) and GET /readyz (every
// check passes; 503 naming the failing ones otherwise). details, when set,
// adds informational members (e.g. breaker states) that never fail readiness.
func Health(r gin.IRoutes, checks []Check, details func() map[string]any) {
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		type result struct {
			name string
			err  error
		}
		results := make(chan result, len(checks))
		for _, ch := range checks {
			go func() { results <- result{ch.Name, ch.Check(ctx)} }()
		}
		status := http.StatusOK
		body := gin.H{"status": "ok"}
		states := map[string]string{}
		var failing []string
		for range checks {
			r := <-results
			if r.err != nil {
				states[r.name] = "unavailable"
				failing = append(failing, r.name)
				Logger(c).WarnContext(c.Request.Context(), "readiness check failed", "check", r.name, "error", r.err.Error())
				continue
			}
			states[r.name] = "ok"
		}
		body["checks"] = states
		if len(failing) > 0 {
			status = http.StatusServiceUnavailable
			body["status"] = "unavailable"
			body["failing"] = failing
			body["detail"] = "Dependencies unavailable: " + joinNames(failing)
			body["code"] = CodeUpstream
		}
		if details != nil {
			body["details"] = details()
		}
		c.JSON(status, body)
	})
}

func joinNames(ns []string) string {
	s := ""
	for i, n := range ns {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}
