package store

import (
	"context"
	"fmt"

	"github.com/gridwatch/gridwatch/cloud/registry"
)

// RecordRegistryVersion remembers that the cloud runs with registry version
// v. Recording the same version again keeps the first record (when and by
// whom it was first loaded).
func (s *Store) RecordRegistryVersion(ctx context.Context, v registry.Version) error {
	_, err := s.exec(ctx, `INSERT INTO registry_versions (id, sha256, source, loaded_at, loaded_by,
		departments, streets, cells, facilities) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		v.ID, v.SHA256, v.Source, fmtTime(v.LoadedAt), v.LoadedBy, v.Departments, v.Streets, v.Cells, v.Facilities)
	if err != nil {
		return fmt.Errorf("record registry version %s: %w", v.ID, err)
	}
	return nil
}

// RegistryVersions lists every registry version recorded, the first loaded
// first.
func (s *Store) RegistryVersions(ctx context.Context) ([]registry.Version, error) {
	rows, err := s.query(ctx, `SELECT id, sha256, source, loaded_at, loaded_by, departments, streets, cells,
		facilities FROM registry_versions ORDER BY loaded_at, id`)
	if err != nil {
		return nil, fmt.Errorf("registry versions: %w", err)
	}
	defer rows.Close()
	var out []registry.Version
	for rows.Next() {
		var v registry.Version
		var at string
		if err := rows.Scan(&v.ID, &v.SHA256, &v.Source, &at, &v.LoadedBy, &v.Departments, &v.Streets, &v.Cells,
			&v.Facilities); err != nil {
			return nil, fmt.Errorf("registry versions: %w", err)
		}
		v.LoadedAt = parseTime(at)
		out = append(out, v)
	}
	return out, rows.Err()
}
