ALTER TABLE clients DROP COLUMN signing_alg;
