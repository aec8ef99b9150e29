module github.com/order-service/cluster/pause

go 1.26.0
