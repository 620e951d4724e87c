package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Batch runs fn in one transaction like Update, for applying many reports
// at once. Inside it, the writes that a report's application makes most
// (SaveCase, AddEvent, LinkReport) are kept in memory and written with a few
// bulk statements before any read that could see them and at commit, and
// the cases that LoadOpenCases, OpenCase, Case and CreateCase see are served
// from memory afterwards. What fn observes is the same as under Update;
// what it saves is one round trip per kind of write instead of one per write.
// An error anywhere, including in the deferred writes, rolls everything back.
func (s *Store) Batch(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &Tx{tx: tx, s: s, b: &batch{cases: map[int64]*Case{}, open: map[string]int64{}, dirty: map[int64]bool{}}}
	if err := fn(t); err != nil {
		tx.Rollback()
		return err
	}
	if err := t.flush(ctx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// batch is the in-memory side of a Batch transaction. Its methods are safe
// on a nil *batch (outside Batch) and then report that they did nothing.
type batch struct {
	cases map[int64]*Case  // every case read or created in this transaction, as it now stands
	open  map[string]int64 // incident key → its open case (0: none), for keys LoadOpenCases covered
	dirty map[int64]bool   // cases saved since the last flush
	order []int64          // dirty case ids in the order first saved

	events  []Event
	links   []link
	reports []pendingReport // inserted at the next flush
	pending map[reportKey]int
}

type link struct {
	device string
	seq    int64
	caseID int64
}

type reportKey struct {
	device string
	seq    int64
}

type pendingReport struct {
	r      Report
	caseID sql.NullInt64
}

// link records LinkReport in memory; false outside Batch.
func (b *batch) link(device string, seq, caseID int64) bool {
	if b == nil {
		return false
	}
	if i, ok := b.pending[reportKey{device, seq}]; ok {
		b.reports[i].caseID = sql.NullInt64{Int64: caseID, Valid: true} // written with the report
		return true
	}
	b.links = append(b.links, link{device, seq, caseID})
	return true
}

// ErrConflict means a report of a batch was stored by another transaction
// while the batch ran (another cloud process got the same message): the
// batch is rolled back, and applying its reports one by one sorts it out.
var ErrConflict = errors.New("a report of the batch was stored concurrently")

func closed(status string) bool {
	return status == "closed" || status == "voided" || status == "rejected"
}

// openCase answers OpenCase from memory when it can (ok).
func (b *batch) openCase(key string) (c Case, ok bool, err error) {
	if b == nil {
		return Case{}, false, nil
	}
	id, known := b.open[key]
	if !known {
		return Case{}, false, nil
	}
	if id == 0 {
		return Case{}, true, ErrNotFound
	}
	cp := b.cases[id]
	if closed(cp.Status) {
		// Closed in this transaction: an older open case may exist (it
		// should not, but the database decides).
		delete(b.open, key)
		return Case{}, false, nil
	}
	return *cp, true, nil
}

func (b *batch) caseByID(id int64) (Case, bool) {
	if b == nil {
		return Case{}, false
	}
	c, ok := b.cases[id]
	if !ok {
		return Case{}, false
	}
	return *c, true
}

// cache keeps a case just read from the database.
func (b *batch) cache(c Case) {
	if b != nil {
		b.cases[c.ID] = &c
	}
}

// opened records what the database (under the incident's lock) or this
// transaction says is the open case of an incident; id 0 for none.
func (b *batch) opened(key string, id int64) {
	if b != nil {
		b.open[key] = id
	}
}

func (b *batch) created(c Case) {
	b.cache(c)
	if !closed(c.Status) {
		b.opened(c.IncidentKey, c.ID) // the newest, as OpenCase orders them
	}
}

// save records SaveCase in memory; false if c is unknown here (the caller
// then writes it at once).
func (b *batch) save(c Case) bool {
	if b == nil {
		return false
	}
	cur, ok := b.cases[c.ID]
	if !ok {
		return false
	}
	// Only what SaveCase writes changes.
	cur.Status, cur.DetectionState, cur.Confidence, cur.EvidenceSHA256 = c.Status, c.DetectionState, c.Confidence, c.EvidenceSHA256
	cur.RestoredAt, cur.UpdatedAt, cur.OwnerDepartment, cur.OwnerName = c.RestoredAt, c.UpdatedAt, c.OwnerDepartment, c.OwnerName
	cur.Deadline, cur.ClosedAt, cur.HoldFrom, cur.Reworks = c.Deadline, c.ClosedAt, c.HoldFrom, c.Reworks
	if !b.dirty[c.ID] {
		b.dirty[c.ID] = true
		b.order = append(b.order, c.ID)
	}
	return true
}

// LoadOpenCases looks up the open cases of many incidents at once (inside
// Batch; elsewhere it does nothing), so that OpenCase on them needs no
// round trip. On PostgreSQL it locks the incidents as OpenCase does one by
// one, all at once and in a fixed order, so that two batches cannot
// deadlock.
func (t *Tx) LoadOpenCases(ctx context.Context, keys []string) error {
	if t.b == nil || len(keys) == 0 {
		return nil
	}
	if err := t.flushCases(ctx); err != nil {
		return err
	}
	var todo []string
	seen := map[string]bool{}
	for _, k := range keys {
		if _, ok := t.b.open[k]; !ok && !seen[k] {
			seen[k] = true
			todo = append(todo, k)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	var found []Case
	if t.s.pg {
		if _, err := t.exec(ctx, `SELECT pg_advisory_xact_lock(h) FROM
			(SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(?::text[]) AS k ORDER BY h) AS l`, todo); err != nil {
			return fmt.Errorf("lock incidents: %w", err)
		}
		rows, err := t.query(ctx, `SELECT `+caseColumns+` FROM cases WHERE incident_key = ANY(?::text[])
			AND status NOT IN `+closedStatuses+` ORDER BY id`, todo)
		if err != nil {
			return err
		}
		if found, err = scanCases(rows); err != nil {
			return err
		}
	} else {
		for i := 0; i < len(todo); i += 500 {
			chunk := todo[i:min(i+500, len(todo))]
			args := make([]any, len(chunk))
			for j, k := range chunk {
				args[j] = k
			}
			rows, err := t.query(ctx, `SELECT `+caseColumns+` FROM cases WHERE incident_key IN (`+
				strings.Repeat("?, ", len(chunk)-1)+`?) AND status NOT IN `+closedStatuses+` ORDER BY id`, args...)
			if err != nil {
				return err
			}
			cs, err := scanCases(rows)
			if err != nil {
				return err
			}
			found = append(found, cs...)
		}
	}
	for _, k := range todo {
		t.b.open[k] = 0
	}
	for _, c := range found { // ascending ids: the newest open case wins, as in OpenCase
		t.b.cache(c)
		t.b.opened(c.IncidentKey, c.ID)
	}
	return nil
}

func scanCases(rows *sql.Rows) ([]Case, error) {
	defer rows.Close()
	var out []Case
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// InsertReports is InsertReport for many reports; inserted[i] is false for
// a (device, seq) already stored, or repeated earlier. Inside Batch the
// reports are only looked up now and written at the next flush, together
// with the case LinkReport gives them (one write per report instead of an
// insert and an update); if another transaction stores one of them
// meanwhile, the batch fails with ErrConflict.
func (t *Tx) InsertReports(ctx context.Context, rs []Report) (inserted []bool, err error) {
	if t.b != nil {
		return t.deferReports(ctx, rs)
	}
	inserted = make([]bool, len(rs))
	if !t.s.pg {
		for i, r := range rs {
			if inserted[i], err = t.InsertReport(ctx, r); err != nil {
				return nil, err
			}
		}
		return inserted, nil
	}
	type key = reportKey
	n := len(rs)
	device, seq := make([]string, 0, n), make([]int64, 0, n)
	id, phase, kind, fac, state := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	observed, received, payload := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	first := map[key]int{}
	for i, r := range rs {
		k := key{r.Device, int64(r.Seq)}
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = i
		device, seq = append(device, r.Device), append(seq, int64(r.Seq))
		id, phase, kind, fac, state = append(id, r.ReportID), append(phase, r.Phase), append(kind, r.Kind), append(fac, r.FacilityID), append(state, r.State)
		observed, received, payload = append(observed, fmtTime(r.ObservedAt)), append(received, fmtTime(r.ReceivedAt)), append(payload, string(r.Payload))
	}
	rows, err := t.query(ctx, `INSERT INTO reports
		(device, seq, report_id, phase, kind, facility_id, state, observed_at, received_at, payload)
		SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
		ON CONFLICT (device, seq) DO NOTHING RETURNING device, seq`,
		device, seq, id, phase, kind, fac, state, observed, received, payload)
	if err != nil {
		return nil, fmt.Errorf("insert %d reports: %w", len(device), err)
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.device, &k.seq); err != nil {
			return nil, err
		}
		inserted[first[k]] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert %d reports: %w", len(device), err)
	}
	return inserted, nil
}

func (t *Tx) deferReports(ctx context.Context, rs []Report) ([]bool, error) {
	b := t.b
	if b.pending == nil {
		b.pending = map[reportKey]int{}
	}
	inserted := make([]bool, len(rs))
	var ask []int // first occurrences not pending already: look them up
	seen := map[reportKey]bool{}
	for i, r := range rs {
		k := reportKey{r.Device, int64(r.Seq)}
		if _, dup := b.pending[k]; dup || seen[k] {
			continue
		}
		seen[k] = true
		ask = append(ask, i)
	}
	stored := map[reportKey]bool{}
	if len(ask) > 0 && t.s.pg {
		devices, seqs := make([]string, len(ask)), make([]int64, len(ask))
		for j, i := range ask {
			devices[j], seqs[j] = rs[i].Device, int64(rs[i].Seq)
		}
		rows, err := t.query(ctx, `SELECT r.device, r.seq FROM reports AS r
			JOIN unnest(?::text[], ?::bigint[]) AS v(device, seq) ON r.device = v.device AND r.seq = v.seq`, devices, seqs)
		if err != nil {
			return nil, fmt.Errorf("look up %d reports: %w", len(ask), err)
		}
		defer rows.Close()
		for rows.Next() {
			var k reportKey
			if err := rows.Scan(&k.device, &k.seq); err != nil {
				return nil, err
			}
			stored[k] = true
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	} else {
		for _, i := range ask {
			var one int
			err := t.queryRow(ctx, `SELECT 1 FROM reports WHERE device = ? AND seq = ?`, rs[i].Device, int64(rs[i].Seq)).Scan(&one)
			switch {
			case err == nil:
				stored[reportKey{rs[i].Device, int64(rs[i].Seq)}] = true
			case !errors.Is(err, sql.ErrNoRows):
				return nil, err
			}
		}
	}
	for _, i := range ask {
		k := reportKey{rs[i].Device, int64(rs[i].Seq)}
		if stored[k] {
			continue
		}
		b.pending[k] = len(b.reports)
		b.reports = append(b.reports, pendingReport{r: rs[i]})
		inserted[i] = true
	}
	return inserted, nil
}

// SetSeqHWs is SetSeqHW for many devices at once.
func (s *Store) SetSeqHWs(ctx context.Context, hw map[string]uint64) error {
	if len(hw) == 0 {
		return nil
	}
	now := fmtTime(time.Now())
	if !s.pg {
		return s.Update(ctx, func(tx *Tx) error {
			for d, v := range hw {
				if _, err := tx.exec(ctx, s.setSeqHWQuery(), d, now, now, int64(v)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	devices, seqs := make([]string, 0, len(hw)), make([]int64, 0, len(hw))
	for d, v := range hw {
		devices, seqs = append(devices, d), append(seqs, int64(v))
	}
	_, err := s.exec(ctx, `INSERT INTO devices (device, online, status_at, last_seen, seq_hw)
		SELECT d, 1, ?, ?, h FROM unnest(?::text[], ?::bigint[]) AS v(d, h)
		ON CONFLICT (device) DO UPDATE SET seq_hw = GREATEST(devices.seq_hw, excluded.seq_hw)`, now, now, devices, seqs)
	return err
}

// ReportSeqs lists the sequence numbers stored for a device in [from, to].
func (s *Store) ReportSeqs(ctx context.Context, device string, from, to uint64) ([]uint64, error) {
	rows, err := s.query(ctx, `SELECT seq FROM reports WHERE device = ? AND seq BETWEEN ? AND ? ORDER BY seq`,
		device, int64(from), int64(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, uint64(v))
	}
	return out, rows.Err()
}

// flush writes everything Batch deferred (at commit). On PostgreSQL the
// case saves, the reports and the log lines go in one statement (three
// data-modifying CTEs on three tables), so a batch costs one round trip
// more than its reads.
func (t *Tx) flush(ctx context.Context) error {
	b := t.b
	if b == nil || len(b.order)+len(b.events)+len(b.links)+len(b.reports) == 0 {
		return nil
	}
	saves := b.takeSaves()
	events, links, reports := b.events, b.links, b.reports
	b.events, b.links, b.reports, b.pending = nil, nil, nil, nil
	// The statements below run with t.b unset so that they really write.
	t.b = nil
	defer func() { t.b = b }()
	if !t.s.pg {
		for _, c := range saves {
			if err := t.SaveCase(ctx, c); err != nil {
				return err
			}
		}
		for _, p := range reports {
			ok, err := t.insertReport(ctx, p.r, p.caseID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("report %s/%d: %w", p.r.Device, p.r.Seq, ErrConflict)
			}
		}
		for _, l := range links {
			if err := t.LinkReport(ctx, l.device, uint64(l.seq), l.caseID); err != nil {
				return err
			}
		}
		for _, e := range events {
			if err := t.AddEvent(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}
	if len(links) > 0 { // reports stored before the batch: rare
		n := len(links)
		device, seq, caseID := make([]string, n), make([]int64, n), make([]int64, n)
		for i, l := range links {
			device[i], seq[i], caseID[i] = l.device, l.seq, l.caseID
		}
		if _, err := t.exec(ctx, `UPDATE reports AS r SET case_id = v.case_id
			FROM unnest(?::text[], ?::bigint[], ?::bigint[]) AS v(device, seq, case_id)
			WHERE r.device = v.device AND r.seq = v.seq`, device, seq, caseID); err != nil {
			return fmt.Errorf("link %d reports: %w", n, err)
		}
	}
	args := append(append(saveArgs(saves), reportArgs(reports)...), eventArgs(events)...)
	var saved, inserted, logged int
	err := t.queryRow(ctx, `WITH s AS (`+pgSaveCases+` RETURNING 1), r AS (`+pgInsertReports+` RETURNING 1),
		e AS (`+pgAddEvents+` RETURNING 1)
		SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM r), (SELECT count(*) FROM e)`, args...).Scan(&saved, &inserted, &logged)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation: a report stored meanwhile
		return fmt.Errorf("insert %d reports: %w", len(reports), ErrConflict)
	case err != nil:
		return fmt.Errorf("write batch (%d cases, %d reports, %d events): %w", len(saves), len(reports), len(events), err)
	case saved != len(saves):
		return fmt.Errorf("save %d cases: %d found: %w", len(saves), saved, ErrNotFound)
	case inserted != len(reports) || logged != len(events):
		return fmt.Errorf("write batch: %d of %d reports, %d of %d events", inserted, len(reports), logged, len(events))
	}
	return nil
}

// flushCases writes the deferred case saves: before a read of the cases
// table that memory cannot answer. (Reports, links and events wait for the
// commit: no read inside a transaction looks at them, and a report written
// late is written once, with its case.)
func (t *Tx) flushCases(ctx context.Context) error {
	b := t.b
	if b == nil || len(b.order) == 0 {
		return nil
	}
	saves := b.takeSaves()
	t.b = nil
	defer func() { t.b = b }()
	if !t.s.pg {
		for _, c := range saves {
			if err := t.SaveCase(ctx, c); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := t.exec(ctx, pgSaveCases, saveArgs(saves)...)
	if err != nil {
		return fmt.Errorf("save %d cases: %w", len(saves), err)
	}
	if got, _ := res.RowsAffected(); got != int64(len(saves)) {
		return fmt.Errorf("save %d cases: %d found: %w", len(saves), got, ErrNotFound)
	}
	return nil
}

func (b *batch) takeSaves() []Case {
	saves := make([]Case, len(b.order))
	for i, id := range b.order {
		saves[i] = *b.cases[id]
	}
	b.order, b.dirty = nil, map[int64]bool{}
	return saves
}

// The bulk statements of PostgreSQL: one array parameter per column.
const (
	pgSaveCases = `UPDATE cases AS c SET status = v.status, detection_state = v.det, confidence = v.conf,
		evidence_sha256 = v.ev, restored_at = v.restored, updated_at = v.updated, owner_department = v.owner,
		owner_name = v.owner_name, deadline = v.deadline, closed_at = v.closed_at, hold_from = v.hold, reworks = v.reworks
		FROM unnest(?::bigint[], ?::text[], ?::text[], ?::float8[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
			?::text[], ?::text[], ?::text[], ?::bigint[])
			AS v(id, status, det, conf, ev, restored, updated, owner, owner_name, deadline, closed_at, hold, reworks)
		WHERE c.id = v.id`
	// No ON CONFLICT: the reports were looked up, and a duplicate now is an error.
	pgInsertReports = `INSERT INTO reports
		(device, seq, report_id, phase, kind, facility_id, state, observed_at, received_at, payload, case_id)
		SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
			?::text[], ?::text[], ?::bigint[])`
	// In the order they were added: the log's ids are its order.
	pgAddEvents = `INSERT INTO case_events (case_id, at, actor, action, note, evidence)
		SELECT case_id, at, actor, action, note, evidence
		FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
			WITH ORDINALITY AS v(case_id, at, actor, action, note, evidence, n)
		ORDER BY n`
)

func saveArgs(saves []Case) []any {
	n := len(saves)
	id, reworks := make([]int64, n), make([]int64, n)
	conf := make([]float64, n)
	status, det, ev, restored, updated := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	owner, ownerName, deadline, closedAt, hold := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, c := range saves {
		id[i], reworks[i], conf[i] = c.ID, int64(c.Reworks), c.Confidence
		status[i], det[i], ev[i], restored[i], updated[i] = c.Status, c.DetectionState, c.EvidenceSHA256, fmtTime(c.RestoredAt), fmtTime(c.UpdatedAt)
		owner[i], ownerName[i], deadline[i], closedAt[i], hold[i] = c.OwnerDepartment, c.OwnerName, fmtTime(c.Deadline), fmtTime(c.ClosedAt), c.HoldFrom
	}
	return []any{id, status, det, conf, ev, restored, updated, owner, ownerName, deadline, closedAt, hold, reworks}
}

func reportArgs(ps []pendingReport) []any {
	n := len(ps)
	device, seq := make([]string, n), make([]int64, n)
	id, phase, kind, fac, state := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	observed, received, payload := make([]string, n), make([]string, n), make([]string, n)
	caseID := make([]*int64, n)
	for i, p := range ps {
		r := p.r
		device[i], seq[i] = r.Device, int64(r.Seq)
		id[i], phase[i], kind[i], fac[i], state[i] = r.ReportID, r.Phase, r.Kind, r.FacilityID, r.State
		observed[i], received[i], payload[i] = fmtTime(r.ObservedAt), fmtTime(r.ReceivedAt), string(r.Payload)
		if p.caseID.Valid {
			caseID[i] = &p.caseID.Int64
		}
	}
	return []any{device, seq, id, phase, kind, fac, state, observed, received, payload, caseID}
}

func eventArgs(events []Event) []any {
	n := len(events)
	caseID := make([]int64, n)
	at, actor, action, note, evidence := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range events {
		caseID[i], at[i], actor[i], action[i], note[i], evidence[i] = e.CaseID, fmtTime(e.At), e.Actor, e.Action, e.Note, e.Evidence
	}
	return []any{caseID, at, actor, action, note, evidence}
}
