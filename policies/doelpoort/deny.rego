# Reasons to deny a disclosure. Each rule adds one human-readable reason; the decision in
# disclosure.rego allows only when this set is empty. Reasons name purposes, partners,
# datasets, fields and categories — never identifiers or record values.
#
# The constraints (excluded_domains, excluded_categories, clear_categories,
# requires_justification) are checked against the field ops the register grants, so a
# register edit that grants too much is refused here instead of widening a purpose.
package doelpoort.disclosure

import rego.v1

# Only disclosures are decided by this policy; other actions (hit/no-hit matching,
# subscriptions) need their own rules before they may be allowed.
deny contains "only the disclose action is decided by the disclosure policy" if {
	not input.action == "disclose"
}

# Malformed input must never slip past a rule below because a value it reads is
# undefined; the gateway builds the input, so this fires only on a gateway bug.
deny contains "the policy input is malformed" if {
	not well_formed_input
}

deny contains sprintf("purpose %s is not in the register", [input.purpose]) if {
	not purpose
}

deny contains sprintf("purpose %s is not granted to %s", [input.purpose, input.requester.id]) if {
	purpose
	not role_granted
}

# Coverage is only worth reporting to a requester the purpose is granted to at all.
deny contains sprintf(
	"purpose %s does not cover %s for %s",
	[input.purpose, input.dataset.id, input.requester.id],
) if {
	role_granted
	not requester_covered
}

# A purpose that is not a security purpose (e.g. vertrek) must never reach intelligence,
# police or financial systems, whatever the dataset entries say.
deny contains sprintf("purpose %s excludes %s data", [input.purpose, input.dataset.domain]) if {
	input.dataset.domain in purpose.excluded_domains
}

# An excluded category may only ever be dropped. A dataset entry that keeps, masks or
# even pseudonymises such a field is a register misconfiguration: deny the whole dataset.
deny contains sprintf(
	"purpose %s excludes %s data (field %s)",
	[input.purpose, category, field],
) if {
	count(purpose.excluded_categories) > 0 # cheap guard: most purposes exclude none
	some field, op in field_ops
	op != "drop"
	category := input.dataset.fields[field].category
	category in purpose.excluded_categories
}

# A purpose with clear_categories (e.g. tf-screening) releases content in clear only for
# those categories; every other field may only be pseudonymised, reduced to exists, or
# dropped. Masking and generalising still release part of the content, so they count as
# clear.
#
# (The reason names the field's category rather than listing clear_categories: regopy
# 1.5 mis-quotes a concat() result passed to sprintf().)
deny contains sprintf(
	"purpose %s does not release %s data in clear (field %s has op %s)",
	[input.purpose, category, field, op],
) if {
	is_array(purpose.clear_categories)
	some field, op in field_ops
	not op_name(op) in non_clear_ops
	category := input.dataset.fields[field].category
	not category in purpose.clear_categories
}

deny contains sprintf("purpose %s requires a justification", [input.purpose]) if {
	purpose.requires_justification == true
	not input.has_justification == true
}

# Only worth saying about a dataset the purpose covers: otherwise a reason above applies.
deny contains sprintf("no identity key for %s was given", [input.dataset.id]) if {
	grant
	not identity_key_given
}
