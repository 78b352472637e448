-- Query regnet's Parquet tables on an object store with DuckDB (httpfs), read-only.
-- Runs write <REGNET_STORAGE>/<table>/gene=<key>/part.parquet; with REGNET_STORAGE on a bucket
-- the same hive layout lives under s3://<bucket>/<prefix>/. Replace {root} with that prefix.
-- Credentials come from the environment (CREATE SECRET … PROVIDER credential_chain).
INSTALL httpfs;
LOAD httpfs;
CREATE OR REPLACE SECRET regnet_store (TYPE s3, PROVIDER credential_chain);
CREATE OR REPLACE VIEW gene_models AS
  SELECT * FROM read_parquet('{root}/gene_models/**/*.parquet', union_by_name = true);
CREATE OR REPLACE VIEW gene_correlation AS
  SELECT * FROM read_parquet('{root}/gene_correlation/**/*.parquet', union_by_name = true);
CREATE OR REPLACE VIEW regulatory_network AS
  SELECT * FROM read_parquet('{root}/regulatory_network/*.parquet', union_by_name = true);
-- e.g. the best-modelled genes and their top regulators
SELECT c.gene, c.valid_spearman, n.tf, n.sign, n.score
FROM gene_correlation c JOIN regulatory_network n USING (gene)
WHERE n.in_network
ORDER BY c.valid_spearman DESC, n.score DESC
LIMIT 20;
