package ipcguard_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/internal/testutil/ipctest"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the committed seed corpus under testdata/fuzz")

// seeds are the named inputs both kept in testdata/fuzz and added by the
// fuzz targets: well-formed ones and the two hostile shapes (a struct
// claiming 10^9 children in a schema message, and in a file's footer).
func streamSeeds(t testing.TB) map[string][3][]byte {
	rec, varied := ipctest.Record(t, 3), ipctest.Varied(t, 7)
	defer rec.Release()
	defer varied.Release()
	msgs := ipctest.Messages(t, rec)
	zstd := ipctest.MessagesWith(t, []ipc.Option{ipc.WithZstd()}, varied)
	dict := ipctest.Messages(t, varied) // schema, dictionary, record batch
	return map[string][3][]byte{
		"valid":          {msgs[0].DataHeader, msgs[1].DataHeader, msgs[1].DataBody},
		"hostile-schema": {ipctest.HostileSchemaMessage(t), msgs[1].DataHeader, msgs[1].DataBody},
		"valid-zstd":     {zstd[0].DataHeader, zstd[1].DataHeader, zstd[1].DataBody},
		"valid-dict":     {dict[0].DataHeader, dict[1].DataHeader, dict[1].DataBody},
	}
}

func fileSeeds(t testing.TB) map[string][]byte {
	a, b, varied := ipctest.Record(t, 3), ipctest.Record(t, 0), ipctest.Varied(t, 7)
	defer a.Release()
	defer b.Release()
	defer varied.Release()
	return map[string][]byte{
		"valid":          ipctest.File(t, a, b),
		"hostile-footer": ipctest.HostileFooterFile(t),
		"valid-varied":   ipctest.File(t, varied, varied),
		"valid-zstd":     ipctest.FileWith(t, []ipc.Option{ipc.WithZstd()}, a, a),
	}
}

// fuzzLimits keep what one input may make the decoder allocate small.
var fuzzLimits = ipcguard.Limits{MaxMessageBytes: 1 << 20, MaxStreamBytes: 4 << 20, MaxBatchRows: 1 << 16}

// FuzzStream feeds a schema message and one more message (header and
// body) through the guard and the Flight record reader. Any input may be
// refused; none may crash or exhaust memory.
func FuzzStream(f *testing.F) {
	for _, s := range streamSeeds(f) {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, schema, header, body []byte) {
		msgs := []*flight.FlightData{{DataHeader: schema}, {DataHeader: header, DataBody: body}}
		_, _ = decodeStream(msgs, fuzzLimits) // refusing is fine; crashing is not
	})
}

// FuzzFile feeds an IPC file through the guard and the file reader.
func FuzzFile(f *testing.F) {
	for _, s := range fileSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeFile(data, fuzzLimits) // refusing is fine; crashing is not
	})
}

// TestSeeds checks the seeds decode as named, and with -write-seeds
// rewrites them under testdata/fuzz.
func TestSeeds(t *testing.T) {
	for name, s := range streamSeeds(t) {
		_, err := decodeStream([]*flight.FlightData{{DataHeader: s[0]}, {DataHeader: s[1], DataBody: s[2]}}, fuzzLimits)
		require.Equal(t, strings.HasPrefix(name, "valid"), err == nil, "%s: %v", name, err)
		if *writeSeeds {
			writeSeed(t, "FuzzStream", name, s[:]...)
		}
	}
	for name, s := range fileSeeds(t) {
		_, err := decodeFile(s, fuzzLimits)
		require.Equal(t, strings.HasPrefix(name, "valid"), err == nil, "%s: %v", name, err)
		if *writeSeeds {
			writeSeed(t, "FuzzFile", name, s)
		}
	}
}

func writeSeed(t *testing.T, target, name string, args ...[]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	body := "go test fuzz v1\n"
	for _, a := range args {
		body += fmt.Sprintf("[]byte(%s)\n", strconv.Quote(string(a)))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644))
}
