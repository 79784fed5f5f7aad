package quickstart

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Trip is one message of the trips topic, the source of the stream views
// driver_trips and driver_last_trip.
type Trip struct {
	DriverID int64
	RiderID  string
	Fare     float64
	TS       time.Time
}

// JSON is the trip as the topic carries it.
func (t Trip) JSON() []byte {
	b := make([]byte, 0, 112)
	b = append(b, `{"driver_id": `...)
	b = strconv.AppendInt(b, t.DriverID, 10)
	b = append(b, `, "rider_id": `...)
	b = strconv.AppendQuote(b, t.RiderID)
	b = append(b, `, "fare": `...)
	b = strconv.AppendFloat(b, t.Fare, 'g', -1, 64)
	b = append(b, `, "ts": "`...)
	b = t.TS.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// Key is the Kafka message key of the trip: its driver, so that a
// driver's trips share a partition.
func (t Trip) Key() []byte { return strconv.AppendInt(nil, t.DriverID, 10) }

// TripGenerator makes reproducible trips of drivers 1001…1000+Drivers.
type TripGenerator struct {
	Drivers int
	// Jitter spreads event times up to this much before or after the
	// given time, so that events arrive out of order.
	Jitter time.Duration
	r      *rand.Rand
}

// NewTripGenerator returns a generator seeded with seed.
func NewTripGenerator(drivers int, jitter time.Duration, seed uint64) *TripGenerator {
	return &TripGenerator{Drivers: drivers, Jitter: jitter, r: rand.New(rand.NewPCG(seed, 7))}
}

// Next returns a trip at about time at (microsecond precision, UTC).
func (g *TripGenerator) Next(at time.Time) Trip {
	if g.Jitter > 0 {
		at = at.Add(time.Duration(g.r.Int64N(int64(2*g.Jitter))) - g.Jitter)
	}
	return Trip{
		DriverID: 1001 + int64(g.r.IntN(g.Drivers)),
		RiderID:  "r" + strconv.Itoa(g.r.IntN(1000)),
		Fare:     math.Round(g.r.Float64()*6000) / 100,
		TS:       at.UTC().Truncate(time.Microsecond),
	}
}
