package offline

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Explain returns the training set's SQL and DuckDB's plan for it; with
// analyze, the plan is run and annotated with timings.
func (e *Engine) Explain(ctx context.Context, req *Request, analyze bool) (string, error) {
	s, _, err := e.prepare(ctx, req)
	if err != nil {
		return "", err
	}
	defer s.close()
	return s.explain(ctx, analyze)
}

// explain implements session.
func (q *prepared) explain(ctx context.Context, analyze bool) (string, error) {
	stmt := "EXPLAIN "
	if analyze {
		stmt = "EXPLAIN ANALYZE "
	}
	rows, err := q.conn.QueryContext(ctx, stmt+q.sql, nil)
	if err != nil {
		return "", fmt.Errorf("explain: %s", duckErr(err))
	}
	defer rows.Close()
	var b strings.Builder
	if q.merge != nil {
		b.WriteString("-- merge join over compacted copies (the SQL below runs only if the merge cannot):\n")
		for i, p := range q.merge.res.plans {
			fmt.Fprintf(&b, "--   %s: %s\n", p.view.Name, q.merge.copies[i])
		}
	}
	b.WriteString(q.sql + "\n\n")
	vals := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(vals); err != nil {
			if errors.Is(err, io.EOF) {
				return b.String(), nil
			}
			return "", err
		}
		b.WriteString(fmt.Sprint(vals[len(vals)-1]) + "\n")
	}
}
