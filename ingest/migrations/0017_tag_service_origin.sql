-- Who took a tag out of service (owner: alarms, ledger sync). 'ledger': the devices file
-- (out_of_service, or the tag was removed from it), which every sync may change again;
-- 'operator': a person through the workflow (reason, person, time), which a resync keeps
-- until a person returns the tag to service.
ALTER TABLE tags ADD COLUMN oos_origin text NOT NULL DEFAULT 'ledger'
    CHECK (oos_origin IN ('ledger', 'operator'));
