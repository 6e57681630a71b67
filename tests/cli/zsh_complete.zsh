# zsh -f zsh_complete.zsh SCRIPT HITS LINE: type LINE and TAB in a real interactive
# zsh that loaded the completion SCRIPT; every candidate zsh offers is appended to the
# file HITS, one per line. Candidates are caught where they are made, in compadd.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PROMPT=""; RPROMPT=""; bindkey -e; autoload -U compinit; compinit -u -D'
zpty -w z "source ${(q)1}; HITS=${(q)2}"
zpty -w z 'compadd () { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi; typeset -a __hits; builtin compadd -A __hits "$@"; print -rl -- $__hits >> $HITS }'
zpty -w z "echo RE''ADY"
zpty -r z line '*READY*'
zpty -n -w z "$3"$'\t'
zpty -n -w z $'\C-u'
zpty -w z "echo DO''NE"
zpty -r z out '*DONE*'
zpty -d z
