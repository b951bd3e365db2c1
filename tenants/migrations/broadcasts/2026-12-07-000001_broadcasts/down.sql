DROP TABLE refusals;
DROP TABLE messages;
DROP TABLE entries;
