package store

import (
	"context"
	"time"
)

// EventsByActorBetween lists the log entries made in [from, to) by actors
// whose name starts with actorPrefix (such as "supervisor:"), oldest first:
// what supervisors' scores are counted from.
func (s *Store) EventsByActorBetween(ctx context.Context, actorPrefix string, from, to time.Time) ([]Event, error) {
	return events(s.query(ctx, `SELECT `+eventColumns+` FROM case_events
		WHERE substr(actor, 1, ?) = ? AND at >= ? AND at < ? ORDER BY id`,
		len([]rune(actorPrefix)), actorPrefix, fmtTime(from), fmtTime(to)))
}
