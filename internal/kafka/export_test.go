package kafka

import "context"

// RunAcks is Run handing the acknowledgements to acks instead of the
// owners.
func RunAcks(ctx context.Context, o *Output, acks func([]Ack)) error { return o.run(ctx, acks) }
