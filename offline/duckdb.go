package offline

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/registry"
)

// column is a named, typed column as DuckDB describes it.
type column struct {
	name, typ string
}

func keyTypeOK(have string, want registry.ValueType) bool {
	if want == registry.TypeString {
		return have == "VARCHAR"
	}
	return isIntegerType(have)
}

// describe returns the columns a query would produce.
func describe(ctx context.Context, conn *duckdb.Conn, query string) ([]column, error) {
	rows, err := conn.QueryContext(ctx, "DESCRIBE "+query, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []column
	vals := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(vals); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		out = append(out, column{name: fmt.Sprint(vals[0]), typ: fmt.Sprint(vals[1])})
	}
}

func queryInt(ctx context.Context, conn *duckdb.Conn, query string) (int64, error) {
	rows, err := conn.QueryContext(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	vals := make([]driver.Value, 1)
	if err := rows.Next(vals); err != nil {
		return 0, err
	}
	switch v := vals[0].(type) {
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	}
	return 0, fmt.Errorf("%s: unexpected %T", query, vals[0])
}

// execCount runs a statement and returns the number of rows it affected.
func execCount(ctx context.Context, conn *duckdb.Conn, query string) (int64, error) {
	res, err := conn.ExecContext(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// duckErr shortens DuckDB's multi-line errors to their first line.
func duckErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
