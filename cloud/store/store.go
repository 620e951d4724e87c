// Package store keeps the cloud's durable state: every accepted report, the
// cases made from them, each case's append-only event log, and the dead
// letters (messages refused, with the reason). SQLite (modernc, pure Go) is the
// embedded default.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Store is the cloud database.
type Store struct {
	db *sql.DB
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// OpenSQLite opens (creating if needed) the SQLite database at path and
// migrates it to the current schema.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// One writer at a time is what SQLite does anyway; one connection avoids
	// "database is locked" between our own goroutines.
	db.SetMaxOpenConns(1)
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

var migrations = []string{
	`CREATE TABLE reports (
		device      TEXT    NOT NULL,
		seq         INTEGER NOT NULL,
		report_id   TEXT    NOT NULL,
		phase       TEXT    NOT NULL,
		kind        TEXT    NOT NULL,
		facility_id TEXT    NOT NULL DEFAULT '',
		state       TEXT    NOT NULL,
		observed_at TEXT    NOT NULL,
		received_at TEXT    NOT NULL,
		case_id     INTEGER,
		payload     TEXT    NOT NULL,
		PRIMARY KEY (device, seq)
	);
	CREATE TABLE cases (
		id               INTEGER PRIMARY KEY AUTOINCREMENT,
		incident_key     TEXT NOT NULL,
		status           TEXT NOT NULL,
		source           TEXT NOT NULL,
		category         TEXT NOT NULL,
		category_name    TEXT NOT NULL DEFAULT '',
		facility_id      TEXT NOT NULL DEFAULT '',
		owner_department TEXT NOT NULL DEFAULT '',
		owner_name       TEXT NOT NULL DEFAULT '',
		grid_cell        TEXT NOT NULL DEFAULT '',
		street           TEXT NOT NULL DEFAULT '',
		street_name      TEXT NOT NULL DEFAULT '',
		street_office    TEXT NOT NULL DEFAULT '',
		lat              REAL NOT NULL,
		lon              REAL NOT NULL,
		device           TEXT NOT NULL DEFAULT '',
		camera           TEXT NOT NULL DEFAULT '',
		detection_state  TEXT NOT NULL DEFAULT '',
		confidence       REAL NOT NULL DEFAULT 0,
		evidence_sha256  TEXT NOT NULL DEFAULT '',
		restored_at      TEXT NOT NULL DEFAULT '',
		created_at       TEXT NOT NULL,
		updated_at       TEXT NOT NULL
	);
	CREATE INDEX cases_incident ON cases (incident_key, status);
	CREATE TABLE case_events (
		id       INTEGER PRIMARY KEY AUTOINCREMENT,
		case_id  INTEGER NOT NULL REFERENCES cases(id),
		at       TEXT NOT NULL,
		actor    TEXT NOT NULL,
		action   TEXT NOT NULL,
		note     TEXT NOT NULL DEFAULT '',
		evidence TEXT NOT NULL DEFAULT ''
	);
	CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
		BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;
	CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
		BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;
	CREATE TABLE dead_letters (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		received_at TEXT NOT NULL,
		topic       TEXT NOT NULL,
		reason      TEXT NOT NULL,
		payload     BLOB NOT NULL
	);
	CREATE TABLE devices (
		device     TEXT PRIMARY KEY,
		online     INTEGER NOT NULL,
		status_at  TEXT NOT NULL,
		last_seen  TEXT NOT NULL,
		software   TEXT NOT NULL DEFAULT '',
		config_ver TEXT NOT NULL DEFAULT ''
	);`,
	// 2: telemetry and the per-device sequence high-water mark (every seq at
	// or below it has arrived), for gap detection across restarts.
	`ALTER TABLE devices ADD COLUMN telemetry TEXT NOT NULL DEFAULT '';
	ALTER TABLE devices ADD COLUMN seq_hw INTEGER NOT NULL DEFAULT 0;`,
	// 3: the closed loop: time limits on cases, and one task per party a
	// case is dispatched to.
	`ALTER TABLE cases ADD COLUMN area_class TEXT NOT NULL DEFAULT '';
	ALTER TABLE cases ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE cases ADD COLUMN deadline TEXT NOT NULL DEFAULT '';
	ALTER TABLE cases ADD COLUMN closed_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE cases ADD COLUMN hold_from TEXT NOT NULL DEFAULT '';
	ALTER TABLE cases ADD COLUMN reworks INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE tasks (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		case_id     INTEGER NOT NULL REFERENCES cases(id),
		dept        TEXT NOT NULL,
		role        TEXT NOT NULL,
		status      TEXT NOT NULL,
		created_at  TEXT NOT NULL,
		deadline    TEXT NOT NULL,
		done_at     TEXT NOT NULL DEFAULT '',
		note        TEXT NOT NULL DEFAULT '',
		photo       TEXT NOT NULL DEFAULT '',
		extension_h REAL NOT NULL DEFAULT 0,
		ext_request TEXT NOT NULL DEFAULT '',
		overdue     INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX tasks_case ON tasks (case_id);
	CREATE INDEX tasks_dept ON tasks (dept, status);`,
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, i+1); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

const timeFormat = time.RFC3339Nano

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFormat, s)
	return t
}
