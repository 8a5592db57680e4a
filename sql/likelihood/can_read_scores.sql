-- Whether this session may read the purchase-likelihood scores, which hold user pseudonyms
-- (PostgreSQL; directly or through a role it inherits from).
SELECT has_table_privilege(CAST(current_user AS TEXT), 'purchase_likelihood', 'SELECT')
