package online

import (
	"context"
	"fmt"

	"github.com/quiverdata/quiver/registry"
)

// Open opens the online store a repository's quiver.yaml configures.
func Open(ctx context.Context, cfg *registry.Config) (Store, error) {
	if err := cfg.Require("online"); err != nil {
		return nil, err
	}
	switch cfg.Online.Type {
	case registry.OnlineEmbedded:
		return OpenEmbedded(cfg.Abs(cfg.Online.Path))
	case registry.OnlineRedis:
		return OpenRedis(ctx, RedisOptions{
			Addr: cfg.Online.Addr, Addrs: cfg.Online.Addrs,
			Username: cfg.Online.Username, Password: cfg.Online.Password, DB: cfg.Online.DB,
		})
	}
	return nil, fmt.Errorf("online store type %q is not embedded or redis", cfg.Online.Type)
}
