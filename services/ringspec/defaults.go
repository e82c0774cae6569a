package ringspec

// Defaults shared by the sensor, the ring model, the lab and the flags.
const (
	// DefaultPreset is Falco's default bufSizePreset (8 MiB).
	DefaultPreset = 4
	// DefaultRingSize is the ring of DefaultPreset: 8 MiB.
	DefaultRingSize = 1 << (20 + DefaultPreset - 1)
	// DefaultLifecycleRingSize is the lifecycle ring of LayoutSplit when
	// none is given: 1 MiB holds ~5,500 processes' fork+exec+exit.
	DefaultLifecycleRingSize = 1 << 20
	// DefaultTargetPct is the default ceiling, in percent of delivered
	// events, on (predicted) events missing process metadata.
	DefaultTargetPct = 0.1
	// DefaultShedHighWater is the ring fill fraction above which adaptive
	// shedding starts when it is on (the lab's shared+shed layout; the
	// sensor's --shed-high is off unless given).
	DefaultShedHighWater = 0.5
	// DefaultShedLowWater is the ring fill fraction below which shedding
	// stops.
	DefaultShedLowWater = 0.1
	// DefaultCPUsPerRing is Falco's cpus_for_each_buffer: LayoutFalco
	// gives each group of this many CPUs its own ring.
	DefaultCPUsPerRing = 2
)
