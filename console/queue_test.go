package console_test

import "github.com/switchyard/switchyard/queue"

func queueFilterEvent(id string) queue.Filter { return queue.Filter{EventID: id} }
