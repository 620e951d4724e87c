package store

import (
	"context"
	"database/sql"
	"errors"
)

// OpenCasesWithKeyPrefix lists the open cases whose incident key starts with
// prefix, oldest first: the device watchdog finds its own cases this way
// after a restart, with no state of its own to lose.
func (s *Store) OpenCasesWithKeyPrefix(ctx context.Context, prefix string) ([]Case, error) {
	// substr, not LIKE: a prefix is compared as it is, with no wildcards to escape.
	rows, err := s.query(ctx, `SELECT `+caseColumns+` FROM cases
		WHERE substr(incident_key, 1, ?) = ? AND status NOT IN `+closedStatuses+` ORDER BY id`,
		len([]rune(prefix)), prefix)
	if err != nil {
		return nil, err
	}
	return scanCases(rows)
}

// LastCaseLocation is where the newest case of the given source that device
// (and camera, unless empty) reported lies: the best location the cloud has
// for a camera whose telemetry carries none.
func (s *Store) LastCaseLocation(ctx context.Context, device, camera string, source string) (lat, lon float64, ok bool, err error) {
	err = s.queryRow(ctx, `SELECT lat, lon FROM cases WHERE device = ? AND (? = '' OR camera = ?) AND source = ?
		AND NOT (lat = 0 AND lon = 0) ORDER BY id DESC LIMIT 1`, device, camera, camera, source).Scan(&lat, &lon)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	return lat, lon, err == nil, err
}
