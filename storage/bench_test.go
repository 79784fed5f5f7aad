package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

// benchServers runs bench against the in-process S3 server and, when a
// MinIO binary is present, against MinIO, with 8 MiB parts.
func benchServers(b *testing.B, bench func(b *testing.B, bk storage.Bucket)) {
	for name, start := range map[string]func(testing.TB) *s3test.Server{"gofakes3": s3test.Start, "minio": s3test.StartMinIO} {
		b.Run(name, func(b *testing.B) {
			srv := start(b)
			opts := srv.Options()
			opts.PartSize = 8 << 20
			bk, err := storage.NewS3(context.Background(), srv.Bucket, opts)
			if err != nil {
				b.Fatal(err)
			}
			bench(b, bk)
		})
	}
}

// BenchmarkS3ReadAt measures ranged reads: one GET of 4 KiB and of 1 MiB,
// and a 64 MiB ReadAt split into parallel GETs of a part.
//
//	go test ./storage/ -run XXX -bench S3 -benchtime 10x
func BenchmarkS3ReadAt(b *testing.B) {
	benchServers(b, func(b *testing.B, bk storage.Bucket) {
		ctx := context.Background()
		data := randomBytes(64<<20, 9)
		if _, err := bk.Put(ctx, "bench.bin", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		o, err := bk.Open(ctx, "bench.bin")
		if err != nil {
			b.Fatal(err)
		}
		defer o.Close()
		for _, size := range []int{4 << 10, 1 << 20, 64 << 20} {
			b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
				p := make([]byte, size)
				b.SetBytes(int64(size))
				for i := 0; b.Loop(); i++ {
					off := int64(i*4099) % int64(len(data)-size+1)
					if _, err := o.ReadAt(p, off); err != nil && off+int64(size) != int64(len(data)) {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// BenchmarkS3PutMultipart measures a 64 MiB Put: eight parts of 8 MiB,
// uploaded at most eight at once.
func BenchmarkS3PutMultipart(b *testing.B) {
	benchServers(b, func(b *testing.B, bk storage.Bucket) {
		ctx := context.Background()
		data := randomBytes(64<<20, 10)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := bk.Put(ctx, "bench-put.bin", bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
