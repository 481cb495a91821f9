"""verify: prove the cluster does what the inventory says, with state checks and live traffic."""
