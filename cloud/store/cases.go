package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Case is one case file as stored. Status values and their transitions
// belong to package cases; the store only keeps them.
type Case struct {
	ID              int64     `json:"id"`
	IncidentKey     string    `json:"incident_key"`
	Status          string    `json:"status"`
	Source          string    `json:"source"`
	Category        string    `json:"category"`
	CategoryName    string    `json:"category_name"`
	FacilityID      string    `json:"facility_id"`
	OwnerDepartment string    `json:"owner_department"`
	OwnerName       string    `json:"owner_name"`
	GridCell        string    `json:"grid_cell"`
	Street          string    `json:"street"`
	StreetName      string    `json:"street_name"`
	StreetOffice    string    `json:"street_office"`
	Lat             float64   `json:"lat"`
	Lon             float64   `json:"lon"`
	Device          string    `json:"device,omitempty"`
	Camera          string    `json:"camera,omitempty"`
	DetectionState  string    `json:"detection_state,omitempty"`
	Confidence      float64   `json:"confidence"`
	EvidenceSHA256  string    `json:"evidence_sha256,omitempty"`
	RestoredAt      time.Time `json:"restored_at,omitzero"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	AreaClass       string    `json:"area_class,omitempty"`
	Urgent          bool      `json:"urgent"`
	Deadline        time.Time `json:"deadline,omitzero"`
	ClosedAt        time.Time `json:"closed_at,omitzero"`
	// HoldFrom is the status a case on hold returns to.
	HoldFrom string `json:"hold_from,omitempty"`
	Reworks  int    `json:"reworks"`
	// RegistryVersion is the id of the registry the case was filed under
	// (its owner, grid cell and street office came from it).
	RegistryVersion string `json:"registry_version,omitempty"`
}

// Task is one party's share of a dispatched case: the owner department's
// fix, or the street office's interim action (warning signs).
type Task struct {
	ID         int64     `json:"id"`
	CaseID     int64     `json:"case_id"`
	Dept       string    `json:"dept"`
	Role       string    `json:"role"`   // owner or street
	Status     string    `json:"status"` // open, done, returned, cancelled
	CreatedAt  time.Time `json:"created_at"`
	Deadline   time.Time `json:"deadline"`
	DoneAt     time.Time `json:"done_at,omitzero"`
	Note       string    `json:"note,omitempty"`
	Photo      string    `json:"photo,omitempty"`
	ExtensionH float64   `json:"extension_hours,omitempty"`
	ExtRequest string    `json:"extension_request,omitempty"`
	Overdue    bool      `json:"overdue"`
}

// Event is one line of a case's append-only log.
type Event struct {
	ID       int64     `json:"id"`
	CaseID   int64     `json:"case_id"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Note     string    `json:"note,omitempty"`
	Evidence string    `json:"evidence,omitempty"`
}

// Report is an accepted report as stored (the raw payload is kept whole).
type Report struct {
	Device     string
	Seq        uint64
	ReportID   string
	Phase      string
	Kind       string
	FacilityID string
	State      string
	ObservedAt time.Time
	ReceivedAt time.Time
	Payload    []byte
}

// Tx is a transaction; all of one report's effects commit together.
type Tx struct {
	tx *sql.Tx
	s  *Store
	b  *batch // deferred writes, inside Store.Batch only
}

// Update runs fn in a transaction, committing if it returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&Tx{tx: tx, s: s}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.s.rebind(q), args...)
}

func (t *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.rebind(q), args...)
}

func (t *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.rebind(q), args...)
}

// InsertReport stores a report unless (device, seq) is already stored;
// inserted is false for a duplicate, which the caller then ignores.
func (t *Tx) InsertReport(ctx context.Context, r Report) (inserted bool, err error) {
	return t.insertReport(ctx, r, sql.NullInt64{})
}

func (t *Tx) insertReport(ctx context.Context, r Report, caseID sql.NullInt64) (inserted bool, err error) {
	res, err := t.exec(ctx, `INSERT INTO reports
		(device, seq, report_id, phase, kind, facility_id, state, observed_at, received_at, payload, case_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device, seq) DO NOTHING`,
		r.Device, int64(r.Seq), r.ReportID, r.Phase, r.Kind, r.FacilityID, r.State,
		fmtTime(r.ObservedAt), fmtTime(r.ReceivedAt), string(r.Payload), caseID)
	if err != nil {
		return false, fmt.Errorf("insert report %s/%d: %w", r.Device, r.Seq, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// LinkReport records which case a report joined.
func (t *Tx) LinkReport(ctx context.Context, device string, seq uint64, caseID int64) error {
	if t.b.link(device, int64(seq), caseID) {
		return nil
	}
	_, err := t.exec(ctx, `UPDATE reports SET case_id = ? WHERE device = ? AND seq = ?`, caseID, device, int64(seq))
	return err
}

// closedStatuses are the statuses in which a case no longer collects reports.
const closedStatuses = `('closed', 'voided', 'rejected')`

// OpenCase returns the open case of an incident, or ErrNotFound. On
// PostgreSQL it first locks the incident for the rest of the transaction, so
// that two transactions (or two cloud processes) cannot both find no open
// case and open one each.
//
// Locking on PostgreSQL: every transaction that writes a case or its tasks
// first takes the incident's lock (OpenCase, LoadOpenCases, and Case, Task
// and Tasks through the case), so read-modify-write never loses an update
// and, the lock being taken before any row, transactions cannot deadlock on
// one incident. SQLite runs one transaction at a time.
func (t *Tx) OpenCase(ctx context.Context, incidentKey string) (Case, error) {
	if c, ok, err := t.b.openCase(incidentKey); ok {
		return c, err
	}
	if err := t.flushCases(ctx); err != nil {
		return Case{}, err
	}
	if t.s.pg {
		if _, err := t.exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, incidentKey); err != nil {
			return Case{}, fmt.Errorf("lock incident %s: %w", incidentKey, err)
		}
	}
	row := t.queryRow(ctx, `SELECT `+caseColumns+` FROM cases
		WHERE incident_key = ? AND status NOT IN `+closedStatuses+` ORDER BY id DESC LIMIT 1`, incidentKey)
	c, err := scanCase(row)
	switch {
	case err == nil:
		t.b.cache(c)
		t.b.opened(incidentKey, c.ID)
	case errors.Is(err, ErrNotFound):
		t.b.opened(incidentKey, 0)
	}
	return c, err
}

// CreateCase inserts c and sets c.ID.
func (t *Tx) CreateCase(ctx context.Context, c *Case) error {
	err := t.queryRow(ctx, `INSERT INTO cases (incident_key, status, source, category, category_name,
		facility_id, owner_department, owner_name, grid_cell, street, street_name, street_office, lat, lon,
		device, camera, detection_state, confidence, evidence_sha256, restored_at, created_at, updated_at,
		area_class, urgent, deadline, closed_at, hold_from, reworks, registry_version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		c.IncidentKey, c.Status, c.Source, c.Category, c.CategoryName, c.FacilityID, c.OwnerDepartment,
		c.OwnerName, c.GridCell, c.Street, c.StreetName, c.StreetOffice, c.Lat, c.Lon, c.Device, c.Camera,
		c.DetectionState, c.Confidence, c.EvidenceSHA256, fmtTime(c.RestoredAt), fmtTime(c.CreatedAt), fmtTime(c.UpdatedAt),
		c.AreaClass, b2i(c.Urgent), fmtTime(c.Deadline), fmtTime(c.ClosedAt), c.HoldFrom, c.Reworks, c.RegistryVersion).Scan(&c.ID)
	if err != nil {
		return fmt.Errorf("create case: %w", err)
	}
	t.b.created(*c)
	return nil
}

// SaveCase writes back the mutable fields of an existing case.
func (t *Tx) SaveCase(ctx context.Context, c Case) error {
	if t.b.save(c) {
		return nil
	}
	res, err := t.exec(ctx, `UPDATE cases SET status = ?, detection_state = ?, confidence = ?,
		evidence_sha256 = ?, restored_at = ?, updated_at = ?, owner_department = ?, owner_name = ?,
		deadline = ?, closed_at = ?, hold_from = ?, reworks = ? WHERE id = ?`,
		c.Status, c.DetectionState, c.Confidence, c.EvidenceSHA256, fmtTime(c.RestoredAt), fmtTime(c.UpdatedAt),
		c.OwnerDepartment, c.OwnerName, fmtTime(c.Deadline), fmtTime(c.ClosedAt), c.HoldFrom, c.Reworks, c.ID)
	if err != nil {
		return fmt.Errorf("save case %d: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("save case %d: %w", c.ID, ErrNotFound)
	}
	return nil
}

// AddEvent appends to a case's log.
func (t *Tx) AddEvent(ctx context.Context, e Event) error {
	if t.b != nil {
		t.b.events = append(t.b.events, e)
		return nil
	}
	_, err := t.exec(ctx, `INSERT INTO case_events (case_id, at, actor, action, note, evidence)
		VALUES (?, ?, ?, ?, ?, ?)`, e.CaseID, fmtTime(e.At), e.Actor, e.Action, e.Note, e.Evidence)
	if err != nil {
		return fmt.Errorf("add event to case %d: %w", e.CaseID, err)
	}
	return nil
}

// Cases lists cases, newest first.
func (s *Store) Cases(ctx context.Context, limit int) ([]Case, error) {
	rows, err := s.query(ctx, `SELECT `+caseColumns+` FROM cases ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	return scanCases(rows)
}

// Case returns one case.
func (s *Store) Case(ctx context.Context, id int64) (Case, error) {
	return scanCase(s.queryRow(ctx, `SELECT `+caseColumns+` FROM cases WHERE id = ?`, id))
}

// Events returns a case's log in order.
func (s *Store) Events(ctx context.Context, caseID int64) ([]Event, error) {
	return events(s.query(ctx, `SELECT `+eventColumns+` FROM case_events WHERE case_id = ? ORDER BY id`, caseID))
}

const eventColumns = `id, case_id, at, actor, action, note, evidence`

// events reads a query's rows of eventColumns.
func events(rows *sql.Rows, err error) ([]Event, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at string
		if err := rows.Scan(&e.ID, &e.CaseID, &at, &e.Actor, &e.Action, &e.Note, &e.Evidence); err != nil {
			return nil, err
		}
		e.At = parseTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

const caseColumns = `id, incident_key, status, source, category, category_name, facility_id, owner_department,
	owner_name, grid_cell, street, street_name, street_office, lat, lon, device, camera, detection_state,
	confidence, evidence_sha256, restored_at, created_at, updated_at, area_class, urgent, deadline, closed_at,
	hold_from, reworks, registry_version`

type scanner interface{ Scan(...any) error }

func scanCase(r scanner) (Case, error) {
	var c Case
	var restored, created, updated, deadline, closed string
	err := r.Scan(&c.ID, &c.IncidentKey, &c.Status, &c.Source, &c.Category, &c.CategoryName, &c.FacilityID,
		&c.OwnerDepartment, &c.OwnerName, &c.GridCell, &c.Street, &c.StreetName, &c.StreetOffice, &c.Lat, &c.Lon,
		&c.Device, &c.Camera, &c.DetectionState, &c.Confidence, &c.EvidenceSHA256, &restored, &created, &updated,
		&c.AreaClass, &c.Urgent, &deadline, &closed, &c.HoldFrom, &c.Reworks, &c.RegistryVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return Case{}, ErrNotFound
	}
	if err != nil {
		return Case{}, err
	}
	c.RestoredAt, c.CreatedAt, c.UpdatedAt = parseTime(restored), parseTime(created), parseTime(updated)
	c.Deadline, c.ClosedAt = parseTime(deadline), parseTime(closed)
	return c, nil
}

// DeadLetter keeps a refused message and why it was refused.
func (s *Store) DeadLetter(ctx context.Context, topic string, payload []byte, reason string) error {
	_, err := s.exec(ctx, `INSERT INTO dead_letters (received_at, topic, reason, payload) VALUES (?, ?, ?, ?)`,
		fmtTime(time.Now()), topic, reason, payload)
	return err
}

// DeadLetterCount returns how many messages were refused.
func (s *Store) DeadLetterCount(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM dead_letters`).Scan(&n)
	return n, err
}

// ReportCount returns how many reports were accepted.
func (s *Store) ReportCount(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM reports`).Scan(&n)
	return n, err
}

// Device is a box's last known status.
type Device struct {
	Device    string    `json:"device"`
	Online    bool      `json:"online"`
	StatusAt  time.Time `json:"status_at"`
	LastSeen  time.Time `json:"last_seen"`
	Software  string    `json:"software,omitempty"`
	ConfigVer string    `json:"config_version,omitempty"`
	MaxSeq    uint64    `json:"max_seq"`
	SeqHW     uint64    `json:"seq_contiguous"`
	// Telemetry is the latest telemetry message, nil before the first.
	Telemetry *wire.Telemetry `json:"telemetry,omitempty"`
}

// SetDeviceStatus records a retained status message.
func (s *Store) SetDeviceStatus(ctx context.Context, d Device) error {
	_, err := s.exec(ctx, `INSERT INTO devices (device, online, status_at, last_seen, software, config_ver)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET online = excluded.online,
		status_at = excluded.status_at, last_seen = excluded.last_seen, software = excluded.software,
		config_ver = excluded.config_ver`,
		d.Device, b2i(d.Online), fmtTime(d.StatusAt), fmtTime(d.LastSeen), d.Software, d.ConfigVer)
	return err
}

// Devices lists known boxes.
func (s *Store) Devices(ctx context.Context) ([]Device, error) {
	rows, err := s.query(ctx, `SELECT device, online, status_at, last_seen, software, config_ver,
		COALESCE((SELECT MAX(seq) FROM reports r WHERE r.device = d.device), 0), seq_hw, telemetry
		FROM devices d ORDER BY device`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var st, ls string
		var maxSeq, hw int64
		var tel string
		if err := rows.Scan(&d.Device, &d.Online, &st, &ls, &d.Software, &d.ConfigVer, &maxSeq, &hw, &tel); err != nil {
			return nil, err
		}
		d.StatusAt, d.LastSeen, d.MaxSeq, d.SeqHW = parseTime(st), parseTime(ls), uint64(maxSeq), uint64(hw)
		if tel != "" {
			var t wire.Telemetry
			if err := json.Unmarshal([]byte(tel), &t); err == nil {
				d.Telemetry = &t
			}
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetTelemetry keeps a device's latest telemetry and marks it seen.
func (s *Store) SetTelemetry(ctx context.Context, device string, at time.Time, raw []byte) error {
	_, err := s.exec(ctx, `INSERT INTO devices (device, online, status_at, last_seen, telemetry)
		VALUES (?, 1, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET last_seen = excluded.last_seen,
		telemetry = excluded.telemetry`, device, fmtTime(at), fmtTime(at), string(raw))
	return err
}

// SeqHW returns a device's sequence high-water mark (0 if unknown).
func (s *Store) SeqHW(ctx context.Context, device string) (uint64, error) {
	var hw int64
	err := s.queryRow(ctx, `SELECT seq_hw FROM devices WHERE device = ?`, device).Scan(&hw)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return uint64(hw), err
}

// SetSeqHW records a device's sequence high-water mark; it never goes down.
func (s *Store) SetSeqHW(ctx context.Context, device string, hw uint64) error {
	now := fmtTime(time.Now())
	_, err := s.exec(ctx, s.setSeqHWQuery(), device, now, now, int64(hw))
	return err
}

func (s *Store) setSeqHWQuery() string {
	return `INSERT INTO devices (device, online, status_at, last_seen, seq_hw)
		VALUES (?, 1, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET seq_hw = ` + s.greatest() + `(devices.seq_hw, excluded.seq_hw)`
}

// CaseReportPayloads returns the raw payloads of the reports that joined a
// case, oldest first (their evidence lists name every file of the case).
func (s *Store) CaseReportPayloads(ctx context.Context, caseID int64) ([][]byte, error) {
	return payloads(s.query(ctx, `SELECT payload FROM reports WHERE case_id = ? ORDER BY received_at, seq`, caseID))
}

// DeviceReportPayloads returns the raw payloads of a device's reports of one
// kind (e.g. the snapshots it took on command), newest first, at most limit.
func (s *Store) DeviceReportPayloads(ctx context.Context, device, kind string, limit int) ([][]byte, error) {
	return payloads(s.query(ctx, `SELECT payload FROM reports WHERE device = ? AND kind = ? ORDER BY seq DESC LIMIT ?`,
		device, kind, limit))
}

// payloads reads a query's rows of one payload column.
func payloads(rows *sql.Rows, err error) ([][]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, []byte(p))
	}
	return out, rows.Err()
}
