package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions connect a Redis store.
type RedisOptions struct {
	// Addr is a standalone server's host:port; Addrs are Cluster seed
	// nodes. Exactly one of them is set.
	Addr     string
	Addrs    []string
	Username string
	Password string
	DB       int // standalone only
	// DialTimeout, ReadTimeout and WriteTimeout default to 2s, 1s and 1s;
	// a request's context deadline applies as well.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// PoolTimeout bounds the wait for a free connection when all are busy
	// (default: ReadTimeout).
	PoolTimeout time.Duration
	// MaxRetries is how often a command that failed on the network is
	// sent again (default 1; -1: never). Each try dials once: a store that
	// refuses connections fails a call at once, not after go-redis's dial
	// retries and backoffs. After PoolSize dials in a row have failed,
	// go-redis stops dialing and fails calls at once with the last dial
	// error, probing the node once a second until it answers.
	MaxRetries int
	// PoolSize is the connections per node (default: go-redis's, 10 per CPU).
	PoolSize int
}

// Validate reports every problem in o.
func (o *RedisOptions) Validate() error {
	var errs []error
	switch {
	case o.Addr == "" && len(o.Addrs) == 0:
		errs = append(errs, errors.New("redis: give addr (standalone) or addrs (Cluster)"))
	case o.Addr != "" && len(o.Addrs) > 0:
		errs = append(errs, errors.New("redis: give addr or addrs, not both"))
	}
	if len(o.Addrs) > 0 && o.DB != 0 {
		errs = append(errs, errors.New("redis: Cluster has no databases; db must be 0"))
	}
	return errors.Join(errs...)
}

// Redis is the Redis store, standalone or Cluster. Keys are
//
//	project:{entity}:view     (rows; the hash tag puts an entity's views on one slot)
//	project:__meta:name       (meta)
//
// Values are rows as Codec encodes them. Writes are pipelined; each is a
// Lua script that compares the new row's event time with the stored one
// and sets the key only if it is not older, atomically on the server.
// Reads are one MGET (standalone) or one pipeline of per-slot MGETs
// (Cluster: one round trip per node, in parallel).
type Redis struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient
}

var _ Store = (*Redis)(nil)

// guardedSet sets each KEYS[i] to ARGV[i] unless the stored row's event
// time (bytes 2..9, big-endian unsigned) is greater, and returns how many
// it set. The common case, a row at least as new as the stored one, costs
// Redis one command: SET ... GET swaps the row in and hands back the old
// one; only when the old row turns out to be newer is it put back, inside
// the same script, so no reader ever sees the older row. The times are
// compared as two unsigned 32-bit halves (Lua numbers are doubles; Lua's
// string comparison follows the server's locale). One call carries many
// keys on a standalone server (Cluster: the keys of one call share a slot).
var guardedSet = redis.NewScript(`
local written = 0
for k = 1, #KEYS do
  local new = ARGV[k]
  local cur = redis.call('SET', KEYS[k], new, 'GET')
  local older = false
  if cur then
    local nh, nl = struct.unpack('>I4I4', new, 2)
    local ch, cl = struct.unpack('>I4I4', cur, 2)
    older = nh < ch or (nh == ch and nl < cl)
  end
  if older then
    redis.call('SET', KEYS[k], cur)
  else
    written = written + 1
  end
end
return written
`)

// swapSet sets each KEYS[k] to ARGV[2k] where it still holds ARGV[2k-1]
// (the empty string: no value; rows are never empty) and returns the
// 1-based indexes of the keys that held something else.
var swapSet = redis.NewScript(`
local conflicts = {}
for k = 1, #KEYS do
  local cur = redis.call('GET', KEYS[k])
  local want = ARGV[2*k-1]
  if (cur == false and want == '') or cur == want then
    redis.call('SET', KEYS[k], ARGV[2*k])
  else
    conflicts[#conflicts+1] = k
  end
end
return conflicts
`)

// keysPerScript is how many rows one script call writes on a standalone
// server: large enough to amortize the call, small enough not to block
// Redis for long.
const keysPerScript = 128

// OpenRedis connects to Redis and loads the write script on every node.
func OpenRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	dial, read, write := opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout
	if dial == 0 {
		dial = 2 * time.Second
	}
	if read == 0 {
		read = time.Second
	}
	if write == 0 {
		write = time.Second
	}
	pool := opts.PoolTimeout
	if pool == 0 {
		pool = read
	}
	retries := opts.MaxRetries
	if retries == 0 {
		retries = 1
	}
	// One dial per try (go-redis dials up to 5 times, 100 ms apart, by
	// default): an unreachable store fails fast, and the caller's
	// deadline is left for the answer.
	const dialerRetries = 1
	s := &Redis{}
	if len(opts.Addrs) > 0 {
		s.cluster = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: opts.Addrs, Username: opts.Username, Password: opts.Password,
			DialTimeout: dial, ReadTimeout: read, WriteTimeout: write, PoolSize: opts.PoolSize,
			PoolTimeout: pool, MaxRetries: retries, DialerRetries: dialerRetries,
			ContextTimeoutEnabled: true,
		})
		s.client = s.cluster
	} else {
		s.client = redis.NewClient(&redis.Options{
			Addr: opts.Addr, Username: opts.Username, Password: opts.Password, DB: opts.DB,
			DialTimeout: dial, ReadTimeout: read, WriteTimeout: write, PoolSize: opts.PoolSize,
			PoolTimeout: pool, MaxRetries: retries, DialerRetries: dialerRetries,
			ContextTimeoutEnabled: true,
		})
	}
	if err := s.loadScript(ctx); err != nil {
		_ = s.client.Close() // the load error is the one to report
		return nil, err
	}
	return s, nil
}

func (s *Redis) loadScript(ctx context.Context) error {
	load := func(ctx context.Context, c *redis.Client) error {
		if err := guardedSet.Load(ctx, c).Err(); err != nil {
			return err
		}
		return swapSet.Load(ctx, c).Err()
	}
	var err error
	if s.cluster != nil {
		err = s.cluster.ForEachMaster(ctx, load)
	} else {
		err = load(ctx, s.client.(*redis.Client))
	}
	if err != nil {
		return unavailable("load write script", err)
	}
	return nil
}

// unavailable wraps errors of reaching Redis as ErrUnavailable; replies
// that Redis gave are reported as they are.
func unavailable(action string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && !strings.HasPrefix(rerr.Error(), "LOADING") && !strings.HasPrefix(rerr.Error(), "CLUSTERDOWN") {
		return fmt.Errorf("%s: %w", action, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, action, err)
}

// SetRedisLogger sends what go-redis logs (dial failures of its
// connection pool, for one) to l as structured records instead of
// unstructured lines on stderr. The go-redis logger is one per process:
// the last call wins.
func SetRedisLogger(l *slog.Logger) {
	redis.SetLogger(redisLogger{l})
}

// redisLogger adapts a slog.Logger to go-redis's logging interface.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	r.l.WarnContext(ctx, "redis client", "component", "go-redis", "detail", msg)
}

// RedisKey is the Redis key of a row.
func RedisKey(k Key) string {
	return k.Project + ":{" + string(k.Entity) + "}:" + k.View
}

func redisMetaKey(project, name string) string { return project + ":__meta:" + name }

// Write implements Store.
func (s *Redis) Write(ctx context.Context, rows []Row, opts WriteOptions) (WriteResult, error) {
	for _, r := range rows {
		if _, err := eventMicros(r.Value); err != nil {
			return WriteResult{}, fmt.Errorf("write %s: %w", r.Key.View, err)
		}
	}
	res, err := s.write(ctx, rows, opts)
	if err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		// A node restarted or was flushed: load the script and write again
		// (the guard makes the replay harmless).
		if lerr := s.loadScript(ctx); lerr != nil {
			return WriteResult{}, lerr
		}
		res, err = s.write(ctx, rows, opts)
	}
	return res, err
}

func (s *Redis) write(ctx context.Context, rows []Row, opts WriteOptions) (WriteResult, error) {
	if opts.Expect != nil {
		return s.swap(ctx, rows, opts.Expect)
	}
	pipe := s.client.Pipeline()
	type call struct {
		cmd  redis.Cmder
		rows int
	}
	var calls []call
	if opts.Force {
		for _, r := range rows {
			calls = append(calls, call{pipe.Set(ctx, RedisKey(r.Key), r.Value, 0), 1})
		}
	} else {
		// Rows in order; on a Cluster one key per call (its own slot).
		per := keysPerScript
		if s.cluster != nil {
			per = 1
		}
		for lo := 0; lo < len(rows); lo += per {
			hi := min(lo+per, len(rows))
			keys := make([]string, 0, hi-lo)
			args := make([]any, 0, hi-lo)
			for _, r := range rows[lo:hi] {
				keys = append(keys, RedisKey(r.Key))
				args = append(args, r.Value)
			}
			calls = append(calls, call{guardedSet.EvalSha(ctx, pipe, keys, args...), hi - lo})
		}
	}
	if len(calls) == 0 {
		return WriteResult{}, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return WriteResult{}, unavailable("write rows", err)
	}
	var res WriteResult
	for _, c := range calls {
		ic, ok := c.cmd.(*redis.Cmd)
		if !ok {
			res.Written += c.rows
			continue
		}
		n, err := ic.Int()
		if err != nil {
			return WriteResult{}, unavailable("write rows", err)
		}
		res.Written += n
		res.Skipped += c.rows - n
	}
	return res, nil
}

// swap writes rows where the store still holds expect, pipelined, one
// script call per keysPerScript rows (Cluster: per row).
func (s *Redis) swap(ctx context.Context, rows []Row, expect [][]byte) (WriteResult, error) {
	if len(expect) != len(rows) {
		return WriteResult{}, fmt.Errorf("write: %d expected values for %d rows", len(expect), len(rows))
	}
	per := keysPerScript
	if s.cluster != nil {
		per = 1
	}
	pipe := s.client.Pipeline()
	type call struct {
		cmd *redis.Cmd
		lo  int
	}
	var calls []call
	for lo := 0; lo < len(rows); lo += per {
		hi := min(lo+per, len(rows))
		keys := make([]string, 0, hi-lo)
		args := make([]any, 0, 2*(hi-lo))
		for i := lo; i < hi; i++ {
			keys = append(keys, RedisKey(rows[i].Key))
			args = append(args, expect[i], rows[i].Value) // nil is sent as ""
		}
		calls = append(calls, call{swapSet.EvalSha(ctx, pipe, keys, args...), lo})
	}
	if len(calls) == 0 {
		return WriteResult{}, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return WriteResult{}, unavailable("write rows", err)
	}
	var res WriteResult
	for _, c := range calls {
		idx, err := c.cmd.Int64Slice()
		if err != nil {
			return WriteResult{}, unavailable("write rows", err)
		}
		for _, k := range idx {
			res.Conflicts = append(res.Conflicts, c.lo+int(k)-1)
		}
	}
	res.Skipped = len(res.Conflicts)
	res.Written = len(rows) - res.Skipped
	return res, nil
}

// Read implements Store.
func (s *Redis) Read(ctx context.Context, keys []Key) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = RedisKey(k)
	}
	if s.cluster == nil {
		vals, err := s.client.MGet(ctx, names...).Result()
		if err != nil {
			return nil, unavailable("read rows", err)
		}
		fill(out, vals, nil)
		return out, nil
	}
	// One MGET per slot, all in one pipeline: go-redis sends each node its
	// commands in one round trip, nodes in parallel.
	bySlot := map[string][]int{}
	var order []string
	for i, k := range keys {
		tag := string(k.Entity) // the hash tag decides the slot
		if _, ok := bySlot[tag]; !ok {
			order = append(order, tag)
		}
		bySlot[tag] = append(bySlot[tag], i)
	}
	pipe := s.cluster.Pipeline()
	cmds := make([]*redis.SliceCmd, len(order))
	for j, tag := range order {
		idx := bySlot[tag]
		ks := make([]string, len(idx))
		for n, i := range idx {
			ks[n] = names[i]
		}
		cmds[j] = pipe.MGet(ctx, ks...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("read rows", err)
	}
	for j, tag := range order {
		fill(out, cmds[j].Val(), bySlot[tag])
	}
	return out, nil
}

// fill copies MGET replies into out, at idx (or in order when idx is nil).
func fill(out [][]byte, vals []any, idx []int) {
	for n, v := range vals {
		i := n
		if idx != nil {
			i = idx[n]
		}
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
}

// DeleteView implements Store.
func (s *Redis) DeleteView(ctx context.Context, project, view string) (int64, error) {
	pattern := project + ":{*}:" + view
	var total int64
	del := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			// One UNLINK per key, pipelined: keys of different entities
			// are on different slots, which one Cluster command may not span.
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range batch {
					p.Unlink(ctx, k)
				}
				return nil
			})
			for _, cmd := range cmds {
				total += cmd.(*redis.IntCmd).Val()
			}
			batch = batch[:0]
			return err
		}
		for it.Next(ctx) {
			batch = append(batch, it.Val())
			if len(batch) == 500 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if s.cluster != nil {
		// Masters run concurrently; count under a lock.
		var mu = make(chan struct{}, 1)
		err = s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu <- struct{}{}
			defer func() { <-mu }()
			return del(ctx, c)
		})
	} else {
		err = del(ctx, s.client.(*redis.Client))
	}
	if err != nil {
		return total, unavailable("delete view "+view, err)
	}
	return total, nil
}

// GetMeta implements Store.
func (s *Redis) GetMeta(ctx context.Context, project, name string) ([]byte, error) {
	v, err := s.client.Get(ctx, redisMetaKey(project, name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("read "+name, err)
	}
	return v, nil
}

// SetMeta implements Store.
func (s *Redis) SetMeta(ctx context.Context, project, name string, value []byte) error {
	if err := s.client.Set(ctx, redisMetaKey(project, name), value, 0).Err(); err != nil {
		return unavailable("write "+name, err)
	}
	return nil
}

// Close implements Store.
func (s *Redis) Close() error { return s.client.Close() }
