package mongodb

import "time"

// SetNow makes w read this replica's clock from now.
func (w *ClockWatch) SetNow(now func() time.Time) { w.now = now }

// SetInterval makes w's Run compare every d.
func (w *ClockWatch) SetInterval(d time.Duration) { w.interval = d }
