"""Git's hooks: `install` puts dualgit's into git's hooks dir; `post_checkout` is what runs when
`git worktree add` fires it. The hook itself is the POSIX sh file `post-checkout` beside them."""
