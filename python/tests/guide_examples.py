"""The code examples of the H2O Audit Trail Quick Start and Searching Events
guides, as published (only wrapped in functions, with the output kept for
the test).

Each function logs in with ``h2o_audit_trail.login()`` as the guides do: the
tests set up the environment variables of a configured H2O AI Cloud machine
(H2O_CLOUD_ENVIRONMENT, H2O_CLOUD_CLIENT_PLATFORM_TOKEN), so discovery and the
refresh-token exchange happen for real. The imports are inside the functions
so that they pick whichever client the test activated (ours or the official
one). Each returns its local variables for the test to check."""

# flake8: noqa


def quickstart_complete_example():
    from datetime import datetime, timezone, timedelta
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    # Initialize the client
    clients = h2o_audit_trail.login()
    event_client = clients.event_client

    # Search for events from the last 24 hours
    search_response = event_client.search_events(
        filter_=SearchEventsRequestFilter(
            start_event_time=datetime.now(timezone.utc) - timedelta(days=1),
            principal_exact="users/john.doe"
        ),
        page_size=50
    )

    print(f"Found {len(search_response.events)} events")
    for event in search_response.events:
        print(f"  - {event.action} at {event.event_time}")
        if event.metadata:
            print(f"    Metadata: {event.metadata}")
    return locals()


def quickstart_last_hour():
    from datetime import datetime, timezone, timedelta
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    event_client = h2o_audit_trail.login().event_client

    # Events from the last hour
    response = event_client.search_events(
        filter_=SearchEventsRequestFilter(
            start_event_time=datetime.now(timezone.utc) - timedelta(hours=1)
        ),
        page_size=100
    )
    return locals()


def quickstart_action_regex():
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    event_client = h2o_audit_trail.login().event_client

    # Find all CREATE actions
    response = event_client.search_events(
        filter_=SearchEventsRequestFilter(
            action_regex=".*CREATE$"
        ),
        page_size=50
    )
    return locals()


def quickstart_workspace():
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    event_client = h2o_audit_trail.login().event_client

    # Events for a specific workspace
    response = event_client.search_events(
        filter_=SearchEventsRequestFilter(
            workspace_exact="workspaces/0eed0fc7-8a97-4cdf-8c4a-6af571aec864"
        ),
        page_size=50
    )
    return locals()


def quickstart_error_handling():
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter
    from h2o_audit_trail.exception import CustomApiException

    event_client = h2o_audit_trail.login().event_client

    try:
        response = event_client.search_events(
            filter_=SearchEventsRequestFilter(
                action_regex="[invalid-regex"
            )
        )
    except CustomApiException as e:
        print(f"API error: {e}")
        print(f"Status: {e.status}, reason: {e.reason}")
        error = e
    return locals()


def guide_basic_search():
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter
    from datetime import datetime, timezone

    # Initialize client
    clients = h2o_audit_trail.login()
    event_client = clients.event_client

    # Search with basic filter
    response = event_client.search_events(
        filter_=SearchEventsRequestFilter(
            principal_exact="users/john.doe"
        ),
        page_size=50
    )

    print(f"Found {len(response.events)} events")
    for event in response.events:
        print(f"{event.event_time}: {event.action}")
    return locals()


def guide_time_range():
    from datetime import datetime, timezone, timedelta
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    event_client = h2o_audit_trail.login().event_client

    # Search events from the last 24 hours
    start_time = datetime.now(timezone.utc) - timedelta(days=1)
    end_time = datetime.now(timezone.utc)

    response = event_client.search_events(
        filter_=SearchEventsRequestFilter(
            start_event_time=start_time,
            end_event_time=end_time
        ),
        page_size=100
    )
    return locals()


def guide_exact_match_filters():
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    event_client = h2o_audit_trail.login().event_client

    filter_ = SearchEventsRequestFilter(
        # User-specific events
        principal_exact="users/alice.smith",

        # Specific event source
        event_source_exact="h2oai-enginemanager-server",
    )
    response = event_client.search_events(filter_=filter_, page_size=50)
    return locals()


def guide_default_time_range():
    import h2o_audit_trail

    event_client = h2o_audit_trail.login().event_client

    # No filter: from July 1st, 2025 00:00:00 UTC until now, 50 events per page
    response = event_client.search_events()
    return locals()


def guide_pagination():
    from datetime import datetime, timezone, timedelta
    import h2o_audit_trail
    from h2o_audit_trail.event.search import SearchEventsRequestFilter

    event_client = h2o_audit_trail.login().event_client

    search_filter = SearchEventsRequestFilter(
        start_event_time=datetime.now(timezone.utc) - timedelta(days=30)
    )

    all_events = []
    page_token = ""
    while True:
        response = event_client.search_events(
            filter_=search_filter,
            page_size=100,
            page_token=page_token
        )
        all_events.extend(response.events)
        print(f"Fetched {len(response.events)} events (total: {len(all_events)})")

        if not response.next_page_token:
            break
        page_token = response.next_page_token

    print(f"Total events: {len(all_events)}")
    return locals()
