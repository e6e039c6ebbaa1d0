package mongodb

import "time"

// SetNow makes w read this replica's clock from now.
func (w *ClockWatch) SetNow(now func() time.Time) { w.now = now }
