package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
	"github.com/quiverdata/quiver/wire"
)

// feastCmd is the JSON Feast's remote offline store client sends for
// get_historical_features (its keys and their order as Feast writes
// them), with the given command_id.
func feastCmd(t *testing.T, id string, refs []string, full bool) []byte {
	t.Helper()
	views := []string{}
	aliases := []any{}
	seen := map[string]bool{}
	for _, r := range refs {
		v, _, _ := strings.Cut(r, ":")
		if !seen[v] {
			seen[v] = true
			views = append(views, v)
			aliases = append(aliases, nil)
		}
	}
	b, err := json.Marshal(map[string]any{"command_id": id, "api": "get_historical_features",
		"feature_view_names": views, "feature_refs": refs, "project": "flt",
		"full_feature_names": full, "name_aliases": aliases})
	require.NoError(t, err)
	return b
}

// feastEntities are entity rows as pyarrow makes them of a pandas
// DataFrame that Feast has made time-zone aware: drivers 1..4 (4 has no
// features), event_timestamp as timestamp[ns, UTC], and a label.
func feastEntities(n int) arrow.RecordBatch {
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "event_timestamp", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, func() *arrow.Metadata {
		m := arrow.NewMetadata([]string{"pandas"}, []string{`{"index_columns": []}`})
		return &m
	}())
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(int64(i%4 + 1))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(now.UnixNano()))
		b.Field(2).(*array.Int64Builder).Append(int64(i))
	}
	return b.NewRecordBatch()
}

// feastExchange does what Feast's client does for a read API: one
// DoExchange whose descriptor is the command, the entity table written
// and closed, the answer read to its end.
func (ft *flightTest) feastExchange(t *testing.T, cmd []byte, ents arrow.RecordBatch) (columns, []string, error) {
	t.Helper()
	stream, err := ft.client.DoExchange(context.Background())
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	if err := w.Write(ents); err == nil {
		_ = w.Close() // a failed send shows in the answer's status
	}
	require.NoError(t, stream.CloseSend())
	rd, err := flight.NewRecordReader(stream)
	if err != nil {
		return nil, nil, err
	}
	defer rd.Release()
	got, err := readColumns(t, rd)
	return got, fieldNames(rd.Schema()), err
}

// feastPut does Feast's DoPut: the command as descriptor, the entity
// table written, the stream closed; it returns the server's status.
func (ft *flightTest) feastPut(t *testing.T, cmd []byte, ents arrow.RecordBatch) error {
	t.Helper()
	stream, err := ft.client.DoPut(context.Background())
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	if err := w.Write(ents); err == nil {
		_ = w.Close()
	}
	require.NoError(t, stream.CloseSend())
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// feastGetInfo does Feast's GetFlightInfo then DoGet of the first
// endpoint's ticket.
func (ft *flightTest) feastGetInfo(t *testing.T, cmd []byte) (columns, []string, error) {
	t.Helper()
	info, err := ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	if err != nil {
		return nil, nil, err
	}
	require.NotEmpty(t, info.Endpoint)
	stream, err := ft.client.DoGet(context.Background(), info.Endpoint[0].Ticket)
	require.NoError(t, err)
	rd, err := flight.NewRecordReader(stream)
	if err != nil {
		return nil, nil, err
	}
	defer rd.Release()
	got, err := readColumns(t, rd)
	return got, fieldNames(rd.Schema()), err
}

func fieldNames(s *arrow.Schema) []string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name)
	}
	return out
}

// quiverColumns is Quiver's own training set for ents (DoExchange of a
// training_set command), with the columns renamed as Feast names them.
func (ft *flightTest) quiverColumns(t *testing.T, ents arrow.RecordBatch, full bool, rename map[string]string) columns {
	t.Helper()
	cmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, FullFeatureNames: full})
	require.NoError(t, err)
	stream, err := ft.client.DoExchange(context.Background())
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.NoError(t, w.Write(ents))
	require.NoError(t, w.Close())
	require.NoError(t, stream.CloseSend())
	rd, err := flight.NewRecordReader(stream)
	require.NoError(t, err)
	defer rd.Release()
	got, err := readColumns(t, rd)
	require.NoError(t, err)
	for from, to := range rename {
		got[to] = got[from]
		delete(got, from)
	}
	return got
}

func requireCode(t *testing.T, err error, code codes.Code, contains string) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a gRPC status: %v", err)
	require.Equal(t, code, st.Code(), st.Message())
	require.Contains(t, st.Message(), contains)
}

// Feast's DoExchange of get_historical_features answers Quiver's own
// training set for the same entities, with Feast's column names: feature
// names as Feast spells them (Stats:Rate is Quiver's stats:rate after
// quiver import feast), view__feature with full_feature_names.
func TestFeastOfflineExchangeEqualsQuivers(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	for _, tc := range []struct {
		name  string
		refs  []string
		full  bool
		names []string
		quiv  map[string]string
	}{
		{"plain", []string{"stats:rate"}, false, []string{"driver_id", "event_timestamp", "label", "rate"}, nil},
		{"full names", []string{"stats:rate"}, true, []string{"driver_id", "event_timestamp", "label", "stats__rate"}, nil},
		{"Feast spelling", []string{"Stats:Rate"}, true, []string{"driver_id", "event_timestamp", "label", "Stats__Rate"}, map[string]string{"stats__rate": "Stats__Rate"}},
		{"Feast spelling, short names", []string{"Stats:Rate"}, false, []string{"driver_id", "event_timestamp", "label", "Rate"}, map[string]string{"rate": "Rate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ents := feastEntities(9)
			defer ents.Release()
			got, names, err := ft.feastExchange(t, feastCmd(t, "id-"+tc.name, tc.refs, tc.full), ents)
			require.NoError(t, err)
			require.Equal(t, tc.names, names)
			want := ft.quiverColumns(t, ents, tc.full, tc.quiv)
			require.Equal(t, want, got)
			feat := tc.names[3]
			require.Equal(t, []string{"0.1", "0.2", "0.3", "(null)", "0.1", "0.2", "0.3", "(null)", "0.1"}, got[feat])
			require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8"}, got["label"])
		})
	}
	tables, _, _ := ft.svc.feast.stats()
	require.Zero(t, tables, "DoExchange holds nothing")
}

// The DoPut → GetFlightInfo → DoGet flow answers the same; the ticket is
// the command; the table is held until its DoGet and released after it.
func TestFeastOfflinePutInfoGet(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	ents := feastEntities(6)
	defer ents.Release()
	cmd := feastCmd(t, "2f1c", []string{"stats:rate"}, true)
	require.NoError(t, ft.feastPut(t, cmd, ents))
	tables, bytes, ids := ft.svc.feast.stats()
	require.Equal(t, 1, tables)
	require.Positive(t, bytes)
	require.Equal(t, []string{"2f1c"}, ids)

	info, err := ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.NoError(t, err)
	require.Len(t, info.Endpoint, 1)
	require.Equal(t, cmd, info.Endpoint[0].Ticket.Ticket)

	got, names, err := ft.feastGetInfo(t, cmd)
	require.NoError(t, err)
	require.Equal(t, []string{"driver_id", "event_timestamp", "label", "stats__rate"}, names)
	require.Equal(t, ft.quiverColumns(t, ents, true, nil), got)
	tables, bytes, _ = ft.svc.feast.stats()
	require.Zero(t, tables)
	require.Zero(t, bytes)

	_, _, err = ft.feastGetInfo(t, cmd)
	requireCode(t, err, codes.NotFound, `no Feast entity table is held for command_id "2f1c"`)
	stream, err := ft.client.DoGet(context.Background(), &flight.Ticket{Ticket: cmd})
	require.NoError(t, err)
	_, err = readAll(stream)
	requireCode(t, err, codes.NotFound, "DoPut it first")
}

// Calls Quiver does not serve, and bad ones, fail with a status that
// says what is wrong; nothing is left held.
func TestFeastOfflineErrors(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	ents := feastEntities(3)
	defer ents.Release()
	other := func(api string) []byte {
		b, err := json.Marshal(map[string]any{"command_id": "x-" + api, "api": api, "data_source_name": "src"})
		require.NoError(t, err)
		return b
	}
	mod := func(f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(feastCmd(t, "m", []string{"stats:rate"}, false), &m))
		f(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	mock := func() arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}}, nil))
		defer b.Release()
		b.Field(0).(*array.StringBuilder).Append("mock_key")
		return b.NewRecordBatch()
	}()
	defer mock.Release()
	noStamp := func() arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}}, nil))
		defer b.Release()
		b.Field(0).(*array.Int64Builder).Append(1)
		return b.NewRecordBatch()
	}()
	defer noStamp.Release()
	cases := []struct {
		name string
		cmd  []byte
		ents arrow.RecordBatch
		code codes.Code
		msg  string
	}{
		{"unknown view", feastCmd(t, "a", []string{"nope:rate"}, false), ents, codes.InvalidArgument, `feature "nope:rate": no feature view or on-demand view "nope" in the registry (project flt, version 1)`},
		{"unknown feature", feastCmd(t, "b", []string{"stats:speed"}, false), ents, codes.InvalidArgument, `view stats has no feature "speed" (it has rate)`},
		{"not view:feature", feastCmd(t, "c", []string{"rate"}, false), ents, codes.InvalidArgument, `feature reference "rate" is not view:feature`},
		{"versioned", feastCmd(t, "d", []string{"stats@v2:rate"}, false), ents, codes.InvalidArgument, "names a view version"},
		{"no refs", mod(func(m map[string]any) { m["feature_refs"] = []string{} }), ents, codes.InvalidArgument, `"feature_refs" is empty`},
		{"alias", mod(func(m map[string]any) { m["name_aliases"] = []any{"s2"} }), ents, codes.InvalidArgument, `feature view "stats" is aliased as "s2"`},
		{"other project", mod(func(m map[string]any) { m["project"] = "rides" }), ents, codes.InvalidArgument, `project "rides" is not this server's project "flt"`},
		{"sql entities", mod(func(m map[string]any) { m["entity_df_sql"] = "SELECT 1" }), mock, codes.Unimplemented, "entity_df given as SQL"},
		{"no entity table", mod(func(m map[string]any) { m["end_date"] = "2026-05-01T12:00:00" }), mock, codes.Unimplemented, "without an entity table"},
		{"no event timestamp", feastCmd(t, "e", []string{"stats:rate"}, false), noStamp, codes.InvalidArgument, "no event_timestamp column and 0 other timestamp columns"},
		{"bad type", mod(func(m map[string]any) { m["full_feature_names"] = "yes" }), ents, codes.InvalidArgument, "decode the Feast command"},
		{"no command_id", mod(func(m map[string]any) { delete(m, "command_id") }), ents, codes.InvalidArgument, `has no "command_id"`},
		{"pull_latest", other("pull_latest_from_table_or_query"), mock, codes.Unimplemented, `Feast offline API "pull_latest_from_table_or_query" is not served by Quiver: Quiver loads the online store itself with quiver materialize`},
		{"pull_all", other("pull_all_from_table_or_query"), mock, codes.Unimplemented, "quiver materialize"},
		{"columns", other("get_table_column_names_and_types_from_data_source"), mock, codes.Unimplemented, "quiver plan"},
		{"write batch", other("offline_write_batch"), ents, codes.Unimplemented, "POST /v1/push"},
		{"persist", other("persist"), ents, codes.Unimplemented, "save_training_set"},
		{"logged", other("write_logged_features"), ents, codes.Unimplemented, "does not log"},
		{"validate", other("validate_data_source"), mock, codes.Unimplemented, "quiver apply"},
		{"unknown api", other("frobnicate"), mock, codes.Unimplemented, "the only Feast offline API served is get_historical_features"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ft.feastExchange(t, tc.cmd, tc.ents)
			requireCode(t, err, tc.code, tc.msg)
			requireCode(t, ft.feastPut(t, tc.cmd, tc.ents), tc.code, tc.msg)
		})
	}
	tables, bytes, _ := ft.svc.feast.stats()
	require.Zero(t, tables)
	require.Zero(t, bytes)

	// GetFlightInfo of a command never put, or of a different command
	// under a held command_id.
	_, err := ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: feastCmd(t, "never", []string{"stats:rate"}, false)})
	requireCode(t, err, codes.NotFound, `command_id "never": DoPut it first`)
	require.NoError(t, ft.feastPut(t, feastCmd(t, "held", []string{"stats:rate"}, false), ents))
	_, err = ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: feastCmd(t, "held", []string{"stats:rate"}, true)})
	requireCode(t, err, codes.InvalidArgument, `differs from the one its entity table was sent with`)
	requireCode(t, ft.feastPut(t, feastCmd(t, "held", []string{"stats:rate"}, false), ents), codes.AlreadyExists, `already held for command_id "held"`)

	// Quiver's own commands stay strictly decoded.
	_, err = ft.exchange(t, "training_setx", ents)
	requireCode(t, err, codes.InvalidArgument, "training_setx")
}

// Held tables expire TTL after their DoPut (the clock is the service's);
// the count and byte bounds refuse more, and a refused upload holds
// nothing.
func TestFeastOfflineUploadBounds(t *testing.T) {
	var mu sync.Mutex
	clock := now
	tick := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	nowFn := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	ents := feastEntities(4)
	defer ents.Release()
	size := value.BatchBytes(ents)

	ft := startFlightTest(t, Limits{}, WithFeastUploadLimits(FeastUploadLimits{MaxTables: 2, MaxBytes: 3 * size, TTL: time.Minute}), withFeastClock(nowFn))
	require.NoError(t, ft.feastPut(t, feastCmd(t, "a", []string{"stats:rate"}, false), ents))
	_, one, _ := ft.svc.feast.stats() // the decoded table's buffers
	require.Positive(t, one)
	require.LessOrEqual(t, one, size)
	tick(30 * time.Second)
	require.NoError(t, ft.feastPut(t, feastCmd(t, "b", []string{"stats:rate"}, false), ents))
	requireCode(t, ft.feastPut(t, feastCmd(t, "c", []string{"stats:rate"}, false), ents), codes.ResourceExhausted, "2 Feast entity tables are held")
	tables, bytes, ids := ft.svc.feast.stats()
	require.Equal(t, 2, tables)
	require.Equal(t, 2*one, bytes)
	require.Equal(t, []string{"a", "b"}, ids)

	tick(30 * time.Second) // a is a minute old: expired
	_, _, err := ft.feastGetInfo(t, feastCmd(t, "a", []string{"stats:rate"}, false))
	requireCode(t, err, codes.NotFound, `command_id "a"`)
	tables, bytes, ids = ft.svc.feast.stats()
	require.Equal(t, 1, tables)
	require.Equal(t, one, bytes)
	require.Equal(t, []string{"b"}, ids)

	// Two more tables' bytes would pass the bound.
	big := feastEntities(32)
	defer big.Release()
	requireCode(t, ft.feastPut(t, feastCmd(t, "d", []string{"stats:rate"}, false), big), codes.ResourceExhausted, "would exceed")
	tables, bytes, _ = ft.svc.feast.stats()
	require.Equal(t, 1, tables)
	require.Equal(t, one, bytes)

	got, _, err := ft.feastGetInfo(t, feastCmd(t, "b", []string{"stats:rate"}, false))
	require.NoError(t, err)
	require.Len(t, got["rate"], 4)
	tick(time.Hour)
	tables, bytes, _ = ft.svc.feast.stats()
	require.Zero(t, tables)
	require.Zero(t, bytes)
}

// The Feast command decoder never panics, and whatever it accepts plans
// without panicking.
func FuzzDecodeFeastCommand(f *testing.F) {
	f.Add([]byte(`{"command_id": "5b0c", "api": "get_historical_features", "feature_view_names": ["stats"], "feature_refs": ["stats:rate"], "project": "flt", "full_feature_names": false, "name_aliases": [null]}`))
	f.Add([]byte(`{"command_id": "5b0c", "api": "get_historical_features", "feature_view_names": ["Stats"], "feature_refs": ["Stats:Rate", "stats@v1:rate", ":", "a:b:c"], "project": "FLT", "full_feature_names": true, "name_aliases": ["x"], "entity_df_sql": "SELECT 1"}`))
	f.Add([]byte(`{"command_id": "1", "api": "pull_latest_from_table_or_query", "data_source_name": "src", "join_key_columns": ["driver_id"], "start_date": "2026-01-01T00:00:00", "end_date": null}`))
	f.Add([]byte(`{"command_id": "1", "api": "offline_write_batch", "feature_view_names": ["stats"], "progress": null, "name_aliases": [null]}`))
	f.Add([]byte(`{"api": ""}`))
	f.Add([]byte(`{"api": 7, "command_id": []}`))
	f.Add([]byte(`{"kind": "training_set", "features": ["stats:rate"]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"command_id": "\u0000", "api": "get_historical_features", "feature_refs": null}`))
	defs, errs := registry.ParseDefinitions("flt", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(flightDefsYAML)})
	require.NoError(f, errs.Err())
	snap := &registry.Snapshot{Project: "flt", Version: 1, Defs: defs}
	ents := feastEntities(1)
	defer ents.Release()
	f.Fuzz(func(t *testing.T, b []byte) {
		isFeastCommand(b)
		c, err := decodeFeastCommand(b)
		if err != nil {
			require.Nil(t, c)
			return
		}
		require.NotEmpty(t, c.API)
		require.NotEmpty(t, c.CommandID)
		p, err := planFeast(c, snap, ents.Schema())
		if err == nil {
			require.NotEmpty(t, p.features)
			require.Equal(t, "event_timestamp", p.timestamp)
			for _, ref := range p.features {
				v, _, ok := strings.Cut(ref, ":")
				require.True(t, ok)
				require.NotNil(t, defs.FeatureView(v))
			}
		} else {
			_, ok := status.FromError(err)
			require.True(t, ok, "%v", err)
		}
	})
}

// On-demand features come computed, as Feast's remote client expects
// (it computes none): Feast sends the on-demand refs with their inputs'
// refs, and the request field as an entity column.
func TestFeastOfflineOnDemand(t *testing.T) {
	ft := startFlightTestDefs(t, flightDefsYAML+`
on_demand_feature_views:
  - name: scores
    inputs: [stats]
    request: [{name: surge, type: float64}]
    features:
      - {name: adjusted, type: float64, expr: "stats.rate * request.surge"}
`, Limits{})
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "event_timestamp", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "surge", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	for i := range 4 {
		b.Field(0).(*array.Int64Builder).Append(int64(i + 1))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(now.UnixNano()))
		b.Field(2).(*array.Float64Builder).Append(10)
	}
	ents := b.NewRecordBatch()
	b.Release()
	defer ents.Release()
	got, names, err := ft.feastExchange(t, feastCmd(t, "od", []string{"scores:adjusted", "stats:rate"}, true), ents)
	require.NoError(t, err)
	require.Equal(t, []string{"driver_id", "event_timestamp", "surge", "stats__rate", "scores__adjusted"}, names)
	require.Equal(t, []string{"1", "2", "3", "(null)"}, got["scores__adjusted"])
	require.Equal(t, []string{"0.1", "0.2", "0.3", "(null)"}, got["stats__rate"])
}
