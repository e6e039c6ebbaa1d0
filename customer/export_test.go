package customer

// Unexported names the external tests (package customer_test) use.

// ApplyChanges applies ch to c as a store does.
func ApplyChanges(ch Changes, c *Customer) { ch.apply(c) }

// ValidateService is validateService.
var ValidateService = validateService

// Fingerprint is in's idempotency fingerprint.
func Fingerprint(in ServiceInput) string { return in.fingerprint() }

// Paginate is paginate.
func Paginate[T any](pr PageRequest, total int) (Page[T], error) { return paginate[T](pr, total) }

// StatsWaiting is how many requests wait for the staff's stats.
func (s *Service) StatsWaiting() int {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	return s.stats.waiting
}
