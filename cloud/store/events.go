package store

import (
	"context"
	"time"
)

// EventsByActorBetween lists the log entries made in [from, to) by actors
// whose name starts with actorPrefix (such as "supervisor:"), oldest first:
// what supervisors' scores are counted from.
func (s *Store) EventsByActorBetween(ctx context.Context, actorPrefix string, from, to time.Time) ([]Event, error) {
	rows, err := s.query(ctx, `SELECT id, case_id, at, actor, action, note, evidence FROM case_events
		WHERE substr(actor, 1, ?) = ? AND at >= ? AND at < ? ORDER BY id`,
		len([]rune(actorPrefix)), actorPrefix, fmtTime(from), fmtTime(to))
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
