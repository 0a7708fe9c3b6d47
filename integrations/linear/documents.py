"""Every GraphQL document chatops sends to Linear, in one place.

The conformance suite validates each one against Linear's published schema, so a field
renamed upstream fails a test instead of a task. Operation names say what each is for.
"""

from __future__ import annotations

VIEWER = """
query ChatopsViewer {
  viewer { id name displayName }
}
"""

# The issue as the agent reads it: where it sits, who said what, and its parent.
ISSUE_CONTEXT = """
query ChatopsIssueContext($id: String!, $comments: Int!) {
  issue(id: $id) {
    id
    identifier
    title
    description
    url
    creator { id name displayName }
    team { id key name }
    project { id name }
    labels { nodes { id name } }
    parent { id identifier title description url }
    comments(first: $comments) {
      nodes {
        id
        body
        createdAt
        user { id name displayName }
        botActor { name }
      }
    }
  }
}
"""

TEAM_STATES = """
query ChatopsTeamStates($id: String!) {
  issue(id: $id) {
    id
    team { id states { nodes { id name } } }
  }
}
"""

AGENT_ACTIVITY_CREATE = """
mutation ChatopsAgentActivity($input: AgentActivityCreateInput!) {
  agentActivityCreate(input: $input) {
    success
    agentActivity { id }
  }
}
"""

COMMENT_CREATE = """
mutation ChatopsCommentCreate($input: CommentCreateInput!) {
  commentCreate(input: $input) {
    success
    comment { id }
  }
}
"""

COMMENT_UPDATE = """
mutation ChatopsCommentUpdate($id: String!, $input: CommentUpdateInput!) {
  commentUpdate(id: $id, input: $input) {
    success
    comment { id }
  }
}
"""

# An attachment's url is its key: creating one again with the same url updates it, so a
# follow-up on the same pull request never adds a second link.
ATTACHMENT_CREATE = """
mutation ChatopsAttachment($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) {
    success
    attachment { id url }
  }
}
"""

ISSUE_MOVE = """
mutation ChatopsIssueMove($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: { stateId: $stateId }) {
    success
  }
}
"""

ALL = {
    "VIEWER": VIEWER,
    "ISSUE_CONTEXT": ISSUE_CONTEXT,
    "TEAM_STATES": TEAM_STATES,
    "AGENT_ACTIVITY_CREATE": AGENT_ACTIVITY_CREATE,
    "COMMENT_CREATE": COMMENT_CREATE,
    "COMMENT_UPDATE": COMMENT_UPDATE,
    "ATTACHMENT_CREATE": ATTACHMENT_CREATE,
    "ISSUE_MOVE": ISSUE_MOVE,
}
