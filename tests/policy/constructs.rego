package constructs

import rego.v1
import data.register.purposes as registered
import input.dataset as ds

default allow := false

allow if {
	count(x) > 0
	m.a == 1
	q.r == 5
	deny_reasons == set()
	g(1) == "raw"
	f(1) == 2
	f2(2, 3) == 6
	data.constructs.q.r == 5
}

x := out if {
	some a, b in input.subject_keys
	some c
	input.subject_keys[c] == a
	every k, v in input.dataset.fields {
		v.type != ""
		is_string(k)
	}
	every key in ds.identity_keys {
		count(key) > 0
	}
	not f(1) == 3
	y := [z | some z in input.requester.roles]
	w := {k: spec.category | some k, spec in input.dataset.fields}
	s := {z | z := input.subject_keys[_]}
	count(y) > 0 with input.requester.roles as ["r"]
	registered[input.purpose].legal_basis != ""
	[p, q2] := [1, 2]
	p + q2 == 3
	{"a": one} = {"a": 1}
	one == 1
	out := [a, b, w, s, input.subject_facts[input.purpose]]
} else := ["fallback"] if {
	input.dataset.fields[_].category == "identity"
} else := []

f(a) := a + 1

f2(a, b) := c if {
	c := a * b
}

q.r := 5

m[k] := v if {
	some k, v in {"a": 1}
}

deny_reasons contains msg if {
	msg := sprintf("%s", [input.purpose])
	input.has_justification == false
}

g(_) := `raw`
