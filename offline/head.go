package offline

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Head reads the first n rows of a Parquet file as text, for previews:
// column names, then one slice of cells per row (NULL for nulls). An
// s3:// path is staged into the object cache first.
func (e *Engine) Head(ctx context.Context, path string, n int) ([]string, [][]string, error) {
	if isRemote(path) {
		st := &staged{}
		defer st.release()
		paths, err := e.stage(ctx, path, st, nil)
		if err != nil {
			return nil, nil, err
		}
		if len(paths) != 1 {
			return nil, nil, fmt.Errorf("%w: read %s: want one object, not a glob", ErrInvalidRequest, path)
		}
		path = paths[0]
	}
	conn, err := e.conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT * FROM read_parquet(%s) LIMIT %d", quoteString(path), n), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %s", path, duckErr(err))
	}
	defer rows.Close()
	cols := rows.Columns()
	var out [][]string
	vals := make([]driver.Value, len(cols))
	for {
		if err := rows.Next(vals); err != nil {
			if errors.Is(err, io.EOF) {
				return cols, out, nil
			}
			return nil, nil, err
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			cells[i] = formatCell(v)
		}
		out = append(out, cells)
	}
}

func formatCell(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999")
	case float32:
		return fmt.Sprintf("%.4g", x)
	case float64:
		return fmt.Sprintf("%.4g", x)
	case []any:
		parts := make([]string, 0, min(len(x), 4))
		for i, y := range x {
			if i == 3 {
				parts = append(parts, fmt.Sprintf("…%d more", len(x)-3))
				break
			}
			parts = append(parts, formatCell(y))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v)
}
