package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// writeReport prints the machine, the setup and the table.
func writeReport(w io.Writer, o options, s *system, r *results) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSystem benchmark, %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "machine:  %s\n", machine())
	fmt.Fprintf(&b, "setup:    %s; %s; %s; %d customers, the reads rotating over %d of them\n",
		s.launcher.describe(), mongoKind(o), redisKind(s), o.records, len(s.users))
	for _, l := range s.seeding {
		fmt.Fprintf(&b, "seeding:  %s stack, %d customers through the stores in %s (%d store calls, %.0f/s; streams %s; CPU %s)\n",
			l.name, l.customers, l.took.Round(10*time.Millisecond), l.ops, float64(l.ops)/l.took.Seconds(), strings.Join(l.streams, ", "), l.cpuText())
	}
	fmt.Fprintf(&b, "method:   %d interleaved rounds of %s per side (registration: %d of %s), after %s of warm-up each; keep-alive HTTP/1.1 clients\n",
		o.rounds, o.round, o.regRounds, o.regRound, o.warm)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\n#\tfigure\tmeasured\ttarget\tmet\tper round\tdetail")
	met, total := 0, 0
	for _, f := range sortedFigures(r.figures) {
		total++
		verdict := "no"
		if f.met() {
			verdict = "yes"
			met++
		}
		if f.err != nil {
			verdict = "INVALID"
		}
		op := "≥"
		if f.atMost {
			op = "≤"
		}
		sp := spreadOf(f.per)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s %.2f\t%s\t%s–%s\t%s\n", f.num, f.title, num(f.value), op, f.target, verdict, num(sp.lo), num(sp.hi), f.detail)
	}
	if len(r.latency) > 0 || len(r.memory) > 0 {
		fmt.Fprintf(tw, "5\tlatency under load and peak memory\t(below)\t—\treport\t\t\n")
	}
	_ = tw.Flush()

	if len(r.latency) > 0 {
		b.WriteString("\n5. latency under load\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "request\tconns\tp50\tp99\tp99.9\tthroughput\tsamples\t")
		for _, l := range r.latency {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.0f/s\t%d\t\n", l.name, l.conns, ms(l.p50), ms(l.p99), ms(l.p999), l.rate, l.n)
		}
		_ = tw.Flush()
	}
	if len(r.memory) > 0 {
		b.WriteString("\n5. peak resident memory (VmHWM) over the whole run\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, m := range r.memory {
			v := m.note
			if m.peak > 0 {
				v = fmt.Sprintf("%.1f MiB", float64(m.peak)/(1<<20))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.name, v, m.role)
		}
		_ = tw.Flush()
	}

	writeScaling(&b, o, r.scaling)
	writeCPU(&b, sortedFigures(r.figures))

	var problems []string
	for _, f := range sortedFigures(r.figures) {
		if f.err != nil {
			problems = append(problems, fmt.Sprintf("figure %d is not valid: %v", f.num, f.err))
		}
		for _, n := range f.notes {
			problems = append(problems, fmt.Sprintf("figure %d, %s", f.num, n))
		}
	}
	for _, l := range r.latency {
		if l.err != nil {
			problems = append(problems, fmt.Sprintf("figure 5, %s is not valid: %v", l.name, l.err))
		} else if l.note != "" {
			problems = append(problems, fmt.Sprintf("figure 5, %s", l.note))
		}
	}
	for _, row := range r.scaling {
		if row.err != nil {
			problems = append(problems, fmt.Sprintf("figure 7, %s is not valid: %v", row.name, row.err))
		} else {
			for _, n := range row.notes {
				problems = append(problems, fmt.Sprintf("figure 7, %s", n))
			}
		}
	}
	fmt.Fprintf(&b, "\ntargets met: %d of %d; the run took %s\n", met, total, r.elapsed.Round(time.Second))
	for _, p := range problems {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

// machine describes the CPU, memory, kernel and Go runtime.
func machine() string {
	cpu := firstField("/proc/cpuinfo", "model name")
	if cpu == "" {
		cpu = runtime.GOARCH
	}
	mem := firstField("/proc/meminfo", "MemTotal")
	var memText string
	if kb, ok := strings.CutSuffix(mem, " kB"); ok {
		var n int64
		if _, err := fmt.Sscan(kb, &n); err == nil {
			memText = fmt.Sprintf(", %.1f GiB RAM", float64(n)/(1<<20))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = " " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d × %s (GOMAXPROCS %d)%s, %s/%s%s, %s",
		runtime.NumCPU(), cpu, runtime.GOMAXPROCS(0), memText, runtime.GOOS, runtime.GOARCH, kernel, runtime.Version())
}

// firstField returns the value of the first "key: value" line of a /proc file.
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func mongoKind(o options) string {
	if o.mongoURI != "" {
		return "external MongoDB (MONGODB_URI)"
	}
	return "embedded FerretDB v1 (SQLite)"
}

func redisKind(s *system) string {
	if s.redis == nil {
		return "no Redis"
	}
	v, err := redisInfo(context.Background(), s.redis.URL, "redis_version")
	if err != nil {
		return s.redis.Kind
	}
	return s.redis.Kind + " " + v
}

// sortedFigures orders figures by number for the table.
func sortedFigures(fs []figure) []figure {
	out := slices.Clone(fs)
	slices.SortFunc(out, func(a, b figure) int { return a.num - b.num })
	return out
}

// writeCPU prints, for each side of each figure, the CPU time each process
// spent per operation: where the cost of a ratio lies.
func writeCPU(b *strings.Builder, fs []figure) {
	if len(fs) == 0 {
		return
	}
	b.WriteString("\nCPU time per operation (user + system of each process during a side's rounds ÷ its operations; 10 ms clock ticks)\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, f := range fs {
		for i, c := range f.cpu {
			label := ""
			if i == 0 {
				label = fmt.Sprint(f.num)
			}
			names := slices.Sorted(maps.Keys(c.perOp))
			slices.SortStableFunc(names, func(x, y string) int { return cmp.Compare(c.perOp[y], c.perOp[x]) })
			var parts []string
			var sum time.Duration
			for _, n := range names {
				sum += c.perOp[n]
				if c.perOp[n] >= time.Microsecond {
					parts = append(parts, fmt.Sprintf("%s %s", n, us(c.perOp[n])))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", label, c.side, "total "+us(sum), strings.Join(parts, " · "))
		}
	}
	_ = tw.Flush()
}

func us(d time.Duration) string {
	if d >= 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

// writeScaling prints figure 7 line by line: each path's p50 at both
// sizes, their ratio (overall and its smallest and largest round by
// round), and FerretDB's CPU time per operation at both sizes, which says
// whether a growth is the database's.
func writeScaling(b *strings.Builder, o options, rows []scaleRow) {
	if len(rows) == 0 {
		return
	}
	sm, lg := o.small, o.records
	fmt.Fprintf(b, "\n7. hot paths at %d and at %d customers: p50 of one connection, %d interleaved rounds of %s per side (at least %d operations each)\n",
		sm, lg, o.scaleRounds, o.scaleRound, o.scaleMin)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "path\tp50 @%d\tp50 @%d\tratio\tper round\ttarget\tmet\tFerretDB CPU/op\tsamples\n", sm, lg)
	line := func(r scaleRow) {
		sp := spreadOf(r.per)
		target, verdict := fmt.Sprintf("≤ %.2f", scaleTarget), "no"
		switch {
		case r.mayGrow:
			target, verdict = "may grow", "—"
		case r.err != nil:
			verdict = "INVALID"
		case r.met():
			verdict = "yes"
		}
		db := "—"
		if r.hasDB {
			db = us(r.dbSmall) + " → " + us(r.dbLarge)
		}
		large, ratio, per := ms(r.p50Large), num(r.ratio), num(sp.lo)+"–"+num(sp.hi)
		if r.nLarge == 0 && r.nSmall > 0 && r.p50Small > 0 {
			// Not one answer within a request's deadline.
			large = "> " + requestDeadline.String()
			ratio, per = fmt.Sprintf("> %.0f", float64(requestDeadline)/float64(r.p50Small)), "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d / %d\n", r.name, ms(r.p50Small), large, ratio,
			per, target, verdict, db, r.nSmall, r.nLarge)
	}
	for _, r := range rows {
		if !r.mayGrow {
			line(r)
		}
	}
	for _, r := range rows {
		if r.mayGrow {
			line(r)
		}
	}
	_ = tw.Flush()
	writeCapacity(b, o, rows)
}

// writeCapacity prints the capacity model's input: each hot path's CPU
// time per operation in each service at the large size, and the
// requests per second one core of that service serves (1 s ÷ its CPU per
// operation). One connection, so a service's CPU per operation is its
// own work, without queueing.
func writeCapacity(b *strings.Builder, o options, rows []scaleRow) {
	roles := capacityRoleNames
	fmt.Fprintf(b, "\ncapacity: CPU time per operation of each service at %d customers, and requests/s per core (1 s ÷ CPU per operation); 10 ms clock ticks over the rounds\n",
		o.records)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "path\t%s\t%s\n", strings.Join(roles, "\t"), "requests/s per core (BFF / auth / customer)")
	for _, r := range rows {
		if r.svc == nil {
			continue
		}
		var cpu, rate []string
		for _, role := range roles {
			d := r.svc[role]
			if d < 5*time.Microsecond {
				cpu = append(cpu, "—")
			} else {
				cpu = append(cpu, us(d))
			}
			if role != "FerretDB" {
				if d < 5*time.Microsecond {
					rate = append(rate, "—")
				} else {
					rate = append(rate, fmt.Sprintf("%.0f", float64(time.Second)/float64(d)))
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.name, strings.Join(cpu, "\t"), strings.Join(rate, " / "))
	}
	_ = tw.Flush()
}
