package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// Case reads a case inside a transaction.
func (t *Tx) Case(ctx context.Context, id int64) (Case, error) {
	if c, ok := t.b.caseByID(id); ok {
		return c, nil
	}
	// Not in memory: then not saved in this batch either, so nothing to flush.
	if err := t.lockCase(ctx, id); err != nil {
		return Case{}, err
	}
	c, err := scanCase(t.queryRow(ctx, `SELECT `+caseColumns+` FROM cases WHERE id = ?`+t.s.forUpdate(), id))
	if err == nil {
		t.b.cache(c)
	}
	return c, err
}

// lockCase takes the lock of a case's incident on PostgreSQL (see OpenCase).
func (t *Tx) lockCase(ctx context.Context, caseID int64) error {
	if !t.s.pg {
		return nil
	}
	if _, err := t.exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(incident_key, 0)) FROM cases WHERE id = ?`, caseID); err != nil {
		return fmt.Errorf("lock case %d: %w", caseID, err)
	}
	return nil
}

// CreateTask inserts k and sets k.ID.
func (t *Tx) CreateTask(ctx context.Context, k *Task) error {
	err := t.queryRow(ctx, `INSERT INTO tasks (case_id, dept, role, status, created_at, deadline,
		done_at, note, photo, extension_h, ext_request, overdue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		k.CaseID, k.Dept, k.Role, k.Status, fmtTime(k.CreatedAt), fmtTime(k.Deadline), fmtTime(k.DoneAt),
		k.Note, k.Photo, k.ExtensionH, k.ExtRequest, b2i(k.Overdue)).Scan(&k.ID)
	if err != nil {
		return fmt.Errorf("create task for case %d: %w", k.CaseID, err)
	}
	return nil
}

// SaveTask writes back a task's mutable fields.
func (t *Tx) SaveTask(ctx context.Context, k Task) error {
	res, err := t.exec(ctx, `UPDATE tasks SET status = ?, deadline = ?, done_at = ?, note = ?, photo = ?,
		extension_h = ?, ext_request = ?, overdue = ? WHERE id = ?`,
		k.Status, fmtTime(k.Deadline), fmtTime(k.DoneAt), k.Note, k.Photo, k.ExtensionH, k.ExtRequest, b2i(k.Overdue), k.ID)
	if err != nil {
		return fmt.Errorf("save task %d: %w", k.ID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("save task %d: %w", k.ID, ErrNotFound)
	}
	return nil
}

// Task reads one task inside a transaction.
func (t *Tx) Task(ctx context.Context, id int64) (Task, error) {
	if t.s.pg {
		if _, err := t.exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(c.incident_key, 0))
			FROM tasks AS k JOIN cases AS c ON c.id = k.case_id WHERE k.id = ?`, id); err != nil {
			return Task{}, fmt.Errorf("lock the case of task %d: %w", id, err)
		}
	}
	return scanTask(t.queryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`+t.s.forUpdate(), id))
}

// Tasks lists a case's tasks inside a transaction.
func (t *Tx) Tasks(ctx context.Context, caseID int64) ([]Task, error) {
	if err := t.lockCase(ctx, caseID); err != nil {
		return nil, err
	}
	return queryTasks(ctx, t.tx, t.s.rebind(`SELECT `+taskColumns+` FROM tasks WHERE case_id = ? ORDER BY id`+t.s.forUpdate()), caseID)
}

// CaseTasks lists a case's tasks.
func (s *Store) CaseTasks(ctx context.Context, caseID int64) ([]Task, error) {
	return queryTasks(ctx, s.db, s.rebind(`SELECT `+taskColumns+` FROM tasks WHERE case_id = ? ORDER BY id`), caseID)
}

// TaskFilter selects tasks; empty fields match everything.
type TaskFilter struct {
	Dept   string
	Status string
	Limit  int
}

// Tasks lists tasks, newest first.
func (s *Store) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	return queryTasks(ctx, s.db, s.rebind(`SELECT `+taskColumns+` FROM tasks
		WHERE (? = '' OR dept = ?) AND (? = '' OR status = ?) ORDER BY id DESC LIMIT ?`),
		f.Dept, f.Dept, f.Status, f.Status, f.Limit)
}

// OpenTasksDueBefore lists open tasks whose deadline is before t and that
// are not yet marked overdue.
func (s *Store) OpenTasksDueBefore(ctx context.Context, t time.Time) ([]Task, error) {
	return queryTasks(ctx, s.db, s.rebind(`SELECT `+taskColumns+` FROM tasks
		WHERE status = 'open' AND overdue = 0 AND deadline < ? ORDER BY deadline`), fmtTime(t))
}

// CasesCreatedBetween lists the cases created in [from, to), for scoring.
func (s *Store) CasesCreatedBetween(ctx context.Context, from, to time.Time) ([]Case, error) {
	rows, err := s.query(ctx, `SELECT `+caseColumns+` FROM cases
		WHERE created_at >= ? AND created_at < ? ORDER BY id`, fmtTime(from), fmtTime(to))
	if err != nil {
		return nil, err
	}
	return scanCases(rows)
}

// TasksCreatedBetween lists the tasks created in [from, to), for scoring.
func (s *Store) TasksCreatedBetween(ctx context.Context, from, to time.Time) ([]Task, error) {
	return queryTasks(ctx, s.db, s.rebind(`SELECT `+taskColumns+` FROM tasks
		WHERE created_at >= ? AND created_at < ? ORDER BY id`), fmtTime(from), fmtTime(to))
}

const taskColumns = `id, case_id, dept, role, status, created_at, deadline, done_at, note, photo,
	extension_h, ext_request, overdue`

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func queryTasks(ctx context.Context, db querier, q string, args ...any) ([]Task, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		k, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func scanTask(r scanner) (Task, error) {
	var k Task
	var created, deadline, done string
	err := r.Scan(&k.ID, &k.CaseID, &k.Dept, &k.Role, &k.Status, &created, &deadline, &done, &k.Note, &k.Photo,
		&k.ExtensionH, &k.ExtRequest, &k.Overdue)
	if errors.Is(err, sql.ErrNoRows) {
		return Task{}, ErrNotFound
	}
	if err != nil {
		return Task{}, err
	}
	k.CreatedAt, k.Deadline, k.DoneAt = parseTime(created), parseTime(deadline), parseTime(done)
	return k, nil
}

// OpenCasesNear lists open cases within about `meters` of a point (a
// bounding-box query; the caller measures exact distances).
func (t *Tx) OpenCasesNear(ctx context.Context, lat, lon, meters float64) ([]Case, error) {
	dLat := meters / 111320
	dLon := dLat / math.Max(0.01, math.Cos(lat*math.Pi/180))
	if err := t.flushCases(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+caseColumns+` FROM cases WHERE status NOT IN `+closedStatuses+`
		AND lat BETWEEN ? AND ? AND lon BETWEEN ? AND ? ORDER BY id`, lat-dLat, lat+dLat, lon-dLon, lon+dLon)
	if err != nil {
		return nil, err
	}
	return scanCases(rows)
}
