"""puffjax: fast C environments and a small jitted PPO-family trainer in JAX."""
