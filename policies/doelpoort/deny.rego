# Reasons to deny a disclosure. Each rule adds one human-readable reason; the decision in
# disclosure.rego allows only when this set is empty. Reasons name purposes, partners,
# datasets, fields and categories — never identifiers or record values.
#
# The purpose constraints (allowed_domains, excluded_domains, excluded_categories, the
# category allow-list clear/reduced/pseudonym_categories, requires_justification,
# requires_facts) are checked against the dataset, the field ops the register grants
# (the requester's own included) and the request, so a register edit that grants too
# much is refused here instead of widening a purpose.
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

# A grant that releases no field — every op drop, or every field it names one the dataset
# does not declare (field_ops leaves those out) — would still answer with an empty record
# per match, telling the requester that the subject is in the dataset. Only reported to
# a requester the grant covers: anyone else is refused for that already.
deny contains sprintf("purpose %s releases no field of %s", [input.purpose, input.dataset.id]) if {
	role_granted
	requester_covered
	count(released) == 0
}

# --- domains --------------------------------------------------------------------------

# A purpose with allowed_domains covers datasets of those domains only, whatever dataset
# entries the register adds. vertrek is not a security purpose: it covers immigration
# and detention data and nothing else, so neither a domain the deny-list below forgets
# (KMar passenger or border data) nor one the catalog adds later can reach it.
#
# Like coverage, only reported to a requester the purpose is granted to (anyone else is
# refused for that already), and not for the placeholder "no dataset" (empty id), which
# is refused for not being covered. The reason is built with concat() alone: regopy 1.5
# mis-quotes a concat() result passed to sprintf().
deny contains concat("", [
	"purpose ", input.purpose, " only covers ", and_list(purpose.allowed_domains),
	" data; ", input.dataset.id, " is ", input.dataset.domain, " data",
]) if {
	is_array(purpose.allowed_domains)
	role_granted
	input.dataset.id != ""
	not input.dataset.domain in purpose.allowed_domains
}

# Defence in depth next to allowed_domains: a purpose that is not a security purpose
# (e.g. vertrek) must never reach intelligence, police or financial systems, even when
# someone widens its allow-list.
deny contains sprintf("purpose %s excludes %s data", [input.purpose, input.dataset.domain]) if {
	input.dataset.domain in purpose.excluded_domains
}

# --- field categories -------------------------------------------------------------------

# An excluded category may only ever be dropped. A dataset entry that keeps, masks or
# even pseudonymises such a field is a register misconfiguration: deny the whole dataset.
deny contains sprintf(
	"purpose %s excludes %s data (field %s)",
	[input.purpose, f.category, field],
) if {
	count(purpose.excluded_categories) > 0 # cheap guard first: most purposes exclude none
	some field, f in released
	f.category in purpose.excluded_categories
}

# The category allow-list (tf-screening, pnr-request). A purpose that gives any of
# clear_categories, reduced_categories or pseudonym_categories releases only the
# categories it lists, each no further than its list allows (ops in disclosure.rego):
#
#   clear      any op                                  (tf-screening: the indicator)
#   reduced    pseudonymise, mask, generalise or drop  (pnr-request: who travelled)
#   pseudonym  pseudonymise or drop                    (tf-screening: identifiers)
#   unlisted   drop only                               (amounts, names, payment)
#
# exists is deliberately clear-only: "this person has a reported transaction" is itself
# a signal, not a pseudonym. A category in two lists gets the stricter rule (the register
# loader refuses that anyway). Each reason names the field, its category and its op.

deny contains sprintf(
	"purpose %s releases %s data only pseudonymised (field %s has op %s)",
	[input.purpose, f.category, field, f.op],
) if {
	count(pseudonym_categories) > 0 # cheap guards first, here and below
	some field, f in released
	f.category in pseudonym_categories
	not f.name in pseudonym_ops
}

deny contains sprintf(
	"purpose %s releases %s data only pseudonymised, masked or generalised (field %s has op %s)",
	[input.purpose, f.category, field, f.op],
) if {
	count(reduced_categories) > 0
	some field, f in released
	f.category in reduced_categories
	not f.name in reduced_ops
}

deny contains sprintf(
	"purpose %s does not release %s data (field %s has op %s)",
	[input.purpose, f.category, field, f.op],
) if {
	lists_categories
	some field, f in released
	not f.category in listed_categories
}

# --- the subject ------------------------------------------------------------------------

# A purpose that requires facts about the subject (vertrek: no lawful residence) applies
# only when all of them hold. One reason whatever the cause — the subject unknown to the
# dataset that declares a fact, a fact false, several facts false — and it names no fact:
# the refusal must not tell whether the provider knows the subject, nor which fact
# failed. Only said to a requester the purpose is granted to: the gateway fetches facts
# for no one else, and anyone else is refused for that already.
deny contains sprintf("the subject does not meet the conditions of purpose %s", [input.purpose]) if {
	role_granted
	not subject_eligible
}

# --- the request ------------------------------------------------------------------------

deny contains sprintf("purpose %s requires a justification", [input.purpose]) if {
	purpose.requires_justification == true
	not input.has_justification == true
}

# Only worth saying to a requester the grant covers: anyone else is refused for that
# already, and the missing key would only bury the reason that matters.
deny contains sprintf("no identity key for %s was given", [input.dataset.id]) if {
	role_granted
	requester_covered
	not identity_key_given
}
