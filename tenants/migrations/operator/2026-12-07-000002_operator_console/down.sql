DROP TABLE operator_audit;
DROP TABLE throttle;
DROP TABLE operator_sessions;
DROP TABLE operator_setup_links;
DROP TABLE operators;
