// Package storetest opens stores for tests on every backend: SQLite in a
// temporary directory, and PostgreSQL in a database made for the test run
// (gw_test_<time>_<random> on the local server, dropped at the end) with a fresh
// schema per store.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
)

// Backends are the databases the store supports, by Dialect name.
var Backends = []string{"sqlite", "postgres"}

// DefaultAdminDSN reaches the local PostgreSQL server as on the development
// machines (trust authentication).
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminDSN is where scratch databases are created: $GRIDWATCH_TEST_POSTGRES,
// or DefaultAdminDSN.
func AdminDSN() string {
	if v := os.Getenv("GRIDWATCH_TEST_POSTGRES"); v != "" {
		return v
	}
	return DefaultAdminDSN
}

// The test run's PostgreSQL database, made on first use.
var run struct {
	once    sync.Once
	dsn     string
	drop    func(context.Context) error
	err     error
	schemas atomic.Int64
}

// Main runs a package's tests and then drops the run's PostgreSQL database:
//
//	func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if run.drop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := run.drop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "storetest:", err)
		}
	}
	return code
}

// PostgresDSN returns a DSN for a fresh, empty schema in the test run's
// database. When the server is unreachable the test is skipped, or fails if
// $GRIDWATCH_REQUIRE_POSTGRES is set.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	run.once.Do(func() {
		ctx := context.Background()
		run.dsn, run.drop, run.err = store.CreateScratchDatabase(ctx, AdminDSN(), fmt.Sprintf("gw_test_%d", time.Now().Unix()))
		if run.err == nil {
			dropStale(ctx)
		}
	})
	if run.err != nil {
		msg := fmt.Sprintf("PostgreSQL backend not tested: %v (set GRIDWATCH_TEST_POSTGRES to an admin DSN)", run.err)
		if os.Getenv("GRIDWATCH_REQUIRE_POSTGRES") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	schema := fmt.Sprintf("t%d", run.schemas.Add(1))
	db, err := sql.Open("pgx", run.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	u, _ := url.Parse(run.dsn)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// DB is a store opened for a test.
type DB struct {
	Backend string
	Store   *store.Store
	// Where is the SQLite file or the PostgreSQL DSN.
	Where string
}

// Open opens a fresh, migrated store on backend ("sqlite" or "postgres"),
// closed when the test ends.
func Open(t testing.TB, backend string) *DB {
	t.Helper()
	d := &DB{Backend: backend}
	switch backend {
	case "sqlite":
		d.Where = filepath.Join(t.TempDir(), "gridwatch.db")
	case "postgres":
		d.Where = PostgresDSN(t)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	s, err := d.Reopen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d.Store = s
	t.Cleanup(func() { s.Close() })
	return d
}

// Reopen opens another store on the same database.
func (d *DB) Reopen(ctx context.Context) (*store.Store, error) {
	if d.Backend == "postgres" {
		return store.OpenPostgres(ctx, d.Where)
	}
	return store.OpenSQLite(ctx, d.Where)
}

// Raw opens a second, plain connection to the same database, closed when
// the test ends: what the database itself enforces must hold for every
// writer, not just for package store.
func (d *DB) Raw(t testing.TB) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", d.Where
	if d.Backend == "sqlite" {
		driver, dsn = "sqlite", "file:"+d.Where+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Rebind turns ? placeholders into $n for PostgreSQL, for raw queries.
func (d *DB) Rebind(q string) string {
	if d.Backend != "postgres" {
		return q
	}
	out, n := []byte{}, 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, fmt.Sprintf("$%d", n)...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

// dropStale drops the databases of test runs that were killed before they
// could drop their own (named gw_test_<unix time>_..., older than a day and
// unused).
func dropStale(ctx context.Context) {
	db, err := sql.Open("pgx", AdminDSN())
	if err != nil {
		return
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'gw\_test\_%'`)
	if err != nil {
		return
	}
	var stale []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			continue
		}
		var at int64
		if _, err := fmt.Sscanf(name, "gw_test_%d_", &at); err == nil && time.Since(time.Unix(at, 0)) > 24*time.Hour {
			stale = append(stale, name)
		}
	}
	rows.Close()
	for _, name := range stale {
		db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name) // fails, harmlessly, while anything is connected
	}
}
